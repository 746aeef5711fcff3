/**
 * DDIM (η = 0), as diffusers' DDIMScheduler (v0.40.0, scheduling_ddim.py): spaced timesteps,
 * x0 per prediction_type (clipped when clip_sample), then x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε.
 * After the last step ᾱ_prev is 1 when set_alpha_to_one, else ᾱ_0 (SD 1.x/2.x configs): the
 * result is then the sample at t = 0, not x0, exactly as diffusers returns it.
 *
 * A step from t lands on t − T//N (N the job's step count, T num_train_timesteps), as diffusers'
 * `step` computes prev_timestep whatever the spacing: with "leading" spacing that is the plan's
 * next timestep; with "trailing" and "linspace" it often is not (linspace, 4 steps: the UNet is
 * called at 999, 666, 333, 0 and the steps land on 749, 416, 83 and the end), and diffusers'
 * images are made that way. Below 0 is the end (ᾱ_prev as above).
 *
 * Also the sampler of PNDM configs (SD 1.5, SD 2.1-base): PLMS needs each lane's last three
 * predictions, which a stateless lane does not carry; DDIM is its first-order counterpart on the
 * same "leading" timesteps (PNDM's prev_timestep is t − T//N as well).
 */
import type { SamplerSteps } from '@farm/contracts';
import { NoiseSchedule, SchedulerConfig } from './noise-schedule';
import { Scheduler, predictionToX0 } from './scheduler';
import { spacedTimesteps, startAt } from './timestep-spacing';

/** DDIMScheduler.__init__'s defaults (diffusers v0.40.0). */
export const DDIM_DEFAULTS: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  set_alpha_to_one: true,
  clip_sample: true,
  clip_sample_range: 1,
  original_inference_steps: 50,
  timestep_scaling: 10,
});

export class DDIMScheduler implements Scheduler {
  readonly name = 'ddim';
  readonly schedule: NoiseSchedule;
  readonly sampler: SamplerSteps = { kind: 'spaced' };

  constructor(readonly config: SchedulerConfig) {
    this.schedule = new NoiseSchedule(config);
  }

  timesteps(steps: number, strength = 1): number[] {
    return startAt(spacedTimesteps(this.config, steps, true), strength);
  }

  /** prev_timestep = t − T // N; negative: the end. */
  landings(plan: readonly number[], steps: number): (number | null)[] {
    const ratio = Math.floor(this.config.num_train_timesteps / steps);
    return plan.map((t) => (t - ratio >= 0 ? t - ratio : null));
  }

  initialNoiseScale(): number {
    return 1;
  }

  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array {
    return predictionToX0(this.config, this.schedule.alphaBar(t), modelOutput, sample);
  }

  advance(denoised: Float32Array, sample: Float32Array, t: number, prevTimestep: number | null): Float32Array {
    // 1. ε implied by the (possibly fused) x0:  ε = (x_t − √ᾱ_t·x0) / √(1−ᾱ_t)
    // 2. x_prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε
    const a = this.schedule.alphaBar(t);
    const aPrev = this.schedule.alphaBar(prevTimestep);
    const sa = Math.sqrt(a);
    const sb = Math.sqrt(1 - a);
    const saPrev = Math.sqrt(aPrev);
    const sbPrev = Math.sqrt(1 - aPrev);
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const eps = (sample[i] - sa * denoised[i]) / sb;
      out[i] = saPrev * denoised[i] + sbPrev * eps;
    }
    return out;
  }
}
