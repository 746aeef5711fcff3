/**
 * How one job turns into UNet lanes and back. A job's composition lists its lanes (a prompt
 * embedding over a window of the latent canvas), prepares each lane's input at a step, and
 * fuses the lanes' noise predictions into one x0 estimate for the whole canvas. Fusion happens
 * on x0, before the scheduler re-noises (StreamMultiDiffusion).
 */
import type { Scheduler } from './scheduler';
import type { Window } from './latent-window';

/**
 * What a lane is conditioned on: the text context [L, D] and the model's extra UNet inputs, one
 * row each (SDXL's text_embeds and time_ids, LCM's timestep_cond), by input name.
 */
export interface Conditioning {
  context: Float32Array;
  extras?: Readonly<Record<string, Float32Array>>;
}

/** A lane's ControlNet input: the control image under its window (RGB planes [3, h·s, w·s] in 0…1, s the VAE's pixels per cell) and its weight. */
export interface LaneControl {
  image: Float32Array;
  scale: number;
}

export interface LaneSpec extends Conditioning {
  window: Window;
  control?: LaneControl;
}

export interface Composition {
  readonly lanes: readonly LaneSpec[];
  /** Each lane's UNet input at this step (window-shaped), from the canvas sample. */
  inputs(sample: Float32Array, t: number, step: number): Float32Array[];
  /**
   * The canvas-wide x0 estimate from each lane's noise prediction and input (same order as
   * `lanes`), at timestep t.
   */
  fuse(predictions: readonly Float32Array[], inputs: readonly Float32Array[], t: number, scheduler: Scheduler): Float32Array;
}

/** Classifier-free guidance, as a typed union rather than a flag. */
export type Guidance = { kind: 'none' } | { kind: 'cfg'; scale: number; unconditional: Conditioning };

/** ε = ε_u + s·(ε_c − ε_u). */
export function applyGuidance(cond: Float32Array, uncond: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) out[i] = uncond[i] + scale * (cond[i] - uncond[i]);
  return out;
}
