/**
 * How one job turns into UNet lanes and back. A job's composition lists its lanes (a prompt
 * embedding over a window of the latent canvas) and fuses their noise predictions into one x0
 * estimate for the whole canvas. Fusion happens on x0, before the scheduler re-noises.
 */
import type { Scheduler } from './scheduler';
import { CanvasShape, Window, fullWindow } from './latent-window';

export interface LaneSpec {
  window: Window;
  /** Text embedding [L, D] the lane is conditioned on. */
  context: Float32Array;
}

export interface Composition {
  readonly lanes: readonly LaneSpec[];
  /**
   * The canvas-wide x0 estimate from each lane's noise prediction (window-shaped, same order
   * as `lanes`), the current canvas sample and its timestep.
   */
  fuse(predictions: readonly Float32Array[], sample: Float32Array, t: number, scheduler: Scheduler): Float32Array;
}

/** Classifier-free guidance, as a typed union rather than a flag. */
export type Guidance = { kind: 'none' } | { kind: 'cfg'; scale: number; unconditional: Float32Array };

/** ε = ε_u + s·(ε_c − ε_u), in place into a new array. */
export function applyGuidance(cond: Float32Array, uncond: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
  return out;
}

/** One prompt over the whole canvas, with optional classifier-free guidance. */
export function singlePrompt(canvas: CanvasShape, context: Float32Array, guidance: Guidance): Composition {
  const window = fullWindow(canvas);
  const lanes: LaneSpec[] = [{ window, context }];
  if (guidance.kind === 'cfg') lanes.push({ window, context: guidance.unconditional });
  return {
    lanes,
    fuse(predictions, sample, t, scheduler) {
      const eps = guidance.kind === 'cfg' ? applyGuidance(predictions[0], predictions[1], guidance.scale) : predictions[0];
      return scheduler.denoise(eps, sample, t);
    },
  };
}
