/**
 * The scheduler contract. Schedulers are stateless and batch-shaped (see STYLE.md §1-2):
 * `timesteps(n)` gives the plan, and every call names its own timestep, so lanes of different
 * jobs at different steps can be advanced after sharing one UNet call.
 *
 * A step is split in two so that fusion (regions, panoramas) can happen on the x0 estimate:
 *   x0 = denoise(modelOutput, sample, t)      — the model's estimate of the clean latent
 *   x' = advance(x0, sample, t, tPrev, noise) — the sample at the step's landing (`landings`:
 *                                               the plan's next timestep, or DDIM's t − T//N)
 * Samples are always the UNet's input (see noise-schedule.ts); each scheduler does its own
 * maths in its own space, as diffusers does, and converts at the edges.
 */
import type { SamplerSteps } from '@farm/contracts';
import { NoiseSchedule, SchedulerConfig } from './noise-schedule';

export type SchedulerName = 'euler' | 'euler-ancestral' | 'lcm' | 'ddim';

export interface Scheduler {
  readonly name: SchedulerName;
  readonly config: SchedulerConfig;
  readonly schedule: NoiseSchedule;
  /** How (steps, strength) become a plan, for the submit-time check. */
  readonly sampler: SamplerSteps;
  /**
   * Timesteps, descending, for `steps` denoising steps; `strength` < 1 starts part-way (img2img,
   * as diffusers' pipelines start). Throws InvalidJobError when they make no step.
   */
  timesteps(steps: number, strength?: number): number[];
  /**
   * Where each step of a plan made by `timesteps(steps, …)` lands: the timestep `advance` takes
   * the sample to, null for the end (ᾱ after the last step). The plan's next timestep, except
   * where diffusers' scheduler steps elsewhere (DDIM).
   */
  landings(plan: readonly number[], steps: number): (number | null)[];
  /** Standard deviation of a text-to-image job's first sample (diffusers' init_noise_sigma, as the UNet sees it). */
  initialNoiseScale(firstTimestep: number): number;
  /** The x0 estimate from the model's prediction (ε, v or x0, per prediction_type) at timestep t. */
  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array;
  /**
   * The sample at `prevTimestep` (null after the last step) given the (possibly fused) x0
   * estimate. `noise` is fresh N(0,1) noise from the job's own generator; deterministic
   * schedulers ignore it.
   */
  advance(
    denoised: Float32Array,
    sample: Float32Array,
    t: number,
    prevTimestep: number | null,
    noise: Float32Array,
  ): Float32Array;
}

/** Each step lands on the plan's next timestep, the last one on the end. */
export function nextTimesteps(plan: readonly number[]): (number | null)[] {
  return plan.map((_, i) => (i + 1 < plan.length ? plan[i + 1] : null));
}

/**
 * x0 from a model output in the variance-preserving space, for ᾱ = `alphaBar`:
 * ε: (x − √(1−ᾱ)·ε)/√ᾱ;  v: √ᾱ·x − √(1−ᾱ)·v;  sample: the output itself. Clipped to
 * ±clip_sample_range when the config asks (DDIM, LCM).
 */
export function predictionToX0(config: SchedulerConfig, alphaBar: number, output: Float32Array, x: Float32Array): Float32Array {
  const sa = Math.sqrt(alphaBar);
  const sb = Math.sqrt(1 - alphaBar);
  const out = new Float32Array(x.length);
  switch (config.prediction_type) {
    case 'epsilon':
      for (let i = 0; i < x.length; i++) out[i] = (x[i] - sb * output[i]) / sa;
      break;
    case 'v_prediction':
      for (let i = 0; i < x.length; i++) out[i] = sa * x[i] - sb * output[i];
      break;
    case 'sample':
      out.set(output);
      break;
  }
  if (config.clip_sample) {
    const r = config.clip_sample_range;
    for (let i = 0; i < out.length; i++) out[i] = Math.min(r, Math.max(-r, out[i]));
  }
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
