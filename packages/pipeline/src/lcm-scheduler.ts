/**
 * Latent consistency model sampling, as diffusers' LCMScheduler (v0.40.0, scheduling_lcm.py):
 * N timesteps picked out of the distilled model's original_inference_steps (only the first
 * ⌊original·strength⌋ for img2img), the boundary-condition scalings c_skip/c_out, and
 * re-noising with fresh noise between steps.
 */
import type { SamplerSteps } from '@farm/contracts';
import { InvalidJobError, sampleStepsProblem } from '@farm/contracts';
import { NoiseSchedule, SchedulerConfig } from './noise-schedule';
import { Scheduler, addNoise, nextTimesteps, predictionToX0 } from './scheduler';

/** σ_data of the consistency-model boundary condition. */
const SIGMA_DATA = 0.5;

/** LCMScheduler.__init__'s defaults (diffusers v0.40.0). */
export const LCM_DEFAULTS: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
  set_alpha_to_one: true,
  clip_sample: false,
  clip_sample_range: 1,
  original_inference_steps: 50,
  timestep_scaling: 10,
});

export class LCMScheduler implements Scheduler {
  readonly name = 'lcm';
  readonly schedule: NoiseSchedule;
  readonly sampler: SamplerSteps;

  constructor(readonly config: SchedulerConfig) {
    this.schedule = new NoiseSchedule(config);
    this.sampler = { kind: 'lcm', originalSteps: config.original_inference_steps };
  }

  timesteps(steps: number, strength = 1): number[] {
    const problem = sampleStepsProblem(this.sampler, steps, strength);
    if (problem) throw new InvalidJobError(problem);
    const { num_train_timesteps: T, original_inference_steps: original } = this.config;
    // 1. The timesteps the model was distilled on: k-1, 2k-1, …, with k = T // original.
    const k = Math.floor(T / original);
    const originCount = Math.floor(original * strength);
    const origin: number[] = [];
    for (let i = originCount; i >= 1; i--) origin.push(i * k - 1); // descending
    // 2. N evenly spaced picks from them (np.linspace(0, len, N, endpoint=False), floored).
    const picks: number[] = [];
    for (let i = 0; i < steps; i++) picks.push(origin[Math.floor(i * (origin.length / steps))]);
    return picks;
  }

  /** timesteps[step_index + 1]: the plan's next timestep. */
  landings(plan: readonly number[]): (number | null)[] {
    return nextTimesteps(plan);
  }

  initialNoiseScale(): number {
    return 1;
  }

  /** c_skip and c_out at timestep t (get_scalings_for_boundary_condition_discrete). */
  boundaryScalings(t: number): { cSkip: number; cOut: number } {
    const scaled = t * this.config.timestep_scaling;
    const denom = scaled * scaled + SIGMA_DATA * SIGMA_DATA;
    return { cSkip: (SIGMA_DATA * SIGMA_DATA) / denom, cOut: scaled / Math.sqrt(denom) };
  }

  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array {
    // 1. x0 from the prediction;  2. denoised = c_out·x0 + c_skip·x_t.
    const x0 = predictionToX0(this.config, this.schedule.alphaBar(t), modelOutput, sample);
    const { cSkip, cOut } = this.boundaryScalings(t);
    for (let i = 0; i < x0.length; i++) x0[i] = cOut * x0[i] + cSkip * sample[i];
    return x0;
  }

  advance(
    denoised: Float32Array,
    _sample: Float32Array,
    _t: number,
    prevTimestep: number | null,
    noise: Float32Array,
  ): Float32Array {
    // 3. Last step: the denoised latent is the answer. Otherwise re-noise to the next timestep.
    if (prevTimestep === null) return denoised;
    return addNoise(this.schedule, denoised, noise, prevTimestep);
  }
}
