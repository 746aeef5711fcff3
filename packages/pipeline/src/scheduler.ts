/**
 * The scheduler contract. Schedulers are stateless and batch-shaped (see STYLE.md §1-2):
 * `timesteps(n)` gives the plan, and every call names its own timestep, so lanes of different
 * jobs at different steps can be advanced after sharing one UNet call.
 *
 * A step is split in two so that fusion (regions, panoramas) can happen on the x0 estimate:
 *   x0 = denoise(modelOutput, sample, t)      — the model's estimate of the clean latent
 *   x' = advance(x0, sample, t, tPrev, noise) — the sample at the next (lower) timestep
 */
import { NoiseSchedule } from './noise-schedule';

export interface Scheduler {
  readonly name: string;
  readonly schedule: NoiseSchedule;
  /** Timesteps, descending, for `steps` denoising steps; `strength` < 1 starts part-way (img2img). */
  timesteps(steps: number, strength?: number): number[];
  /** The x0 estimate from an epsilon prediction at timestep t. */
  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array;
  /**
   * The sample at `prevTimestep` (null after the last step, which returns the final latent)
   * given the (possibly fused) x0 estimate. `noise` is fresh N(0,1) noise from the job's own
   * generator; deterministic schedulers ignore it.
   */
  advance(
    denoised: Float32Array,
    sample: Float32Array,
    t: number,
    prevTimestep: number | null,
    noise: Float32Array,
  ): Float32Array;
}

/** x0 = (x − √(1−ᾱ)·ε) / √ᾱ, shared by every epsilon-prediction scheduler. */
export function epsilonToX0(schedule: NoiseSchedule, eps: Float32Array, x: Float32Array, t: number): Float32Array {
  const a = schedule.alphaBar(t);
  const sa = Math.sqrt(a);
  const sb = Math.sqrt(1 - a);
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (x[i] - sb * eps[i]) / sa;
  return out;
}

/** x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·noise — the forward process, used to start img2img and to re-noise. */
export function addNoise(schedule: NoiseSchedule, x0: Float32Array, noise: Float32Array, t: number | null): Float32Array {
  const a = schedule.alphaBar(t);
  const sa = Math.sqrt(a);
  const sb = Math.sqrt(1 - a);
  const out = new Float32Array(x0.length);
  for (let i = 0; i < x0.length; i++) out[i] = sa * x0[i] + sb * noise[i];
  return out;
}
