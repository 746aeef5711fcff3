/**
 * Euler (k-diffusion's sample_euler, churn 0) as diffusers' EulerDiscreteScheduler computes it
 * (v0.40.0, scheduling_euler_discrete.py): spaced float timesteps, σ interpolated at them
 * (np.interp) with a final σ of 0, the first sample scaled by init_noise_sigma, and
 *   x0 = x_σ − σ·ε                                 (ε-prediction)
 *   x0 = v·(−σ/√(σ²+1)) + x_σ/(σ²+1)               (v-prediction)
 *   x_σ' = x_σ + (x_σ − x0)/σ · (σ' − σ)
 * in σ-space, x_σ = √(σ²+1)·x with x the UNet's input (`scale_model_input`).
 */
import type { SamplerSteps } from '@farm/contracts';
import { NoiseSchedule, SchedulerConfig, UnsupportedSchedulerError } from './noise-schedule';
import { Scheduler, SchedulerName, nextTimesteps } from './scheduler';
import { spacedTimesteps, startAt } from './timestep-spacing';

/** EulerDiscreteScheduler.__init__'s defaults, the same as EulerAncestralDiscreteScheduler's (diffusers v0.40.0). */
export const EULER_DEFAULTS: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'linspace',
  steps_offset: 0,
  set_alpha_to_one: true,
  clip_sample: false,
  clip_sample_range: 1,
  original_inference_steps: 50,
  timestep_scaling: 10,
});

export class EulerScheduler implements Scheduler {
  readonly name: SchedulerName = 'euler';
  readonly schedule: NoiseSchedule;
  readonly sampler: SamplerSteps = { kind: 'spaced' };
  /** diffusers' init_noise_sigma: the largest σ, or √(σ_max²+1) with leading spacing. */
  private readonly initNoiseSigma: number;

  constructor(readonly config: SchedulerConfig) {
    if (config.prediction_type === 'sample') throw new UnsupportedSchedulerError('scheduler_config.json: prediction_type "sample" is not supported by Euler schedulers');
    this.schedule = new NoiseSchedule(config);
    const max = this.schedule.sigmas.reduce((a, b) => Math.max(a, b), 0);
    this.initNoiseSigma = config.timestep_spacing === 'leading' ? Math.sqrt(max * max + 1) : max;
  }

  timesteps(steps: number, strength = 1): number[] {
    return startAt(spacedTimesteps(this.config, steps, false), strength);
  }

  /** sigmas[step_index + 1]: the plan's next timestep. */
  landings(plan: readonly number[]): (number | null)[] {
    return nextTimesteps(plan);
  }

  initialNoiseScale(firstTimestep: number): number {
    const s = this.schedule.sigma(firstTimestep);
    return this.initNoiseSigma / Math.sqrt(s * s + 1);
  }

  /** σ after a step to `prev` (0 after the last step: final_sigmas_type "zero"). */
  protected sigmaAfter(prev: number | null): number {
    return prev === null ? 0 : this.schedule.sigma(prev);
  }

  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array {
    const sigma = this.schedule.sigma(t);
    const scale = Math.sqrt(sigma * sigma + 1);
    const x0 = new Float32Array(sample.length);
    if (this.config.prediction_type === 'v_prediction') {
      for (let i = 0; i < x0.length; i++) x0[i] = modelOutput[i] * (-sigma / scale) + (sample[i] * scale) / (sigma * sigma + 1);
    } else {
      for (let i = 0; i < x0.length; i++) x0[i] = sample[i] * scale - sigma * modelOutput[i];
    }
    return x0;
  }

  advance(denoised: Float32Array, sample: Float32Array, t: number, prevTimestep: number | null, _noise?: Float32Array): Float32Array {
    // 1. derivative d = (x_σ − x0)/σ;  2. x_σ' = x_σ + d·(σ' − σ);  3. back to the UNet's input.
    const sigma = this.schedule.sigma(t);
    const next = this.sigmaAfter(prevTimestep);
    return this.step(denoised, sample, sigma, next, next, null, 0);
  }

  /** x_σ' = x_σ + d·(σ_down − σ) + σ_up·noise, returned as the UNet's input at σ_next. */
  protected step(
    denoised: Float32Array,
    sample: Float32Array,
    sigma: number,
    sigmaNext: number,
    sigmaDown: number,
    noise: Float32Array | null,
    sigmaUp: number,
  ): Float32Array {
    const scale = Math.sqrt(sigma * sigma + 1);
    const unscale = 1 / Math.sqrt(sigmaNext * sigmaNext + 1);
    const dt = sigmaDown - sigma;
    const out = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const xs = sample[i] * scale;
      const d = (xs - denoised[i]) / sigma;
      out[i] = (xs + d * dt + (noise ? noise[i] * sigmaUp : 0)) * unscale;
    }
    return out;
  }
}
