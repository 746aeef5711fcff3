/**
 * Latent consistency model sampling, exactly as diffusers' LCMScheduler (scheduling_lcm.py):
 * "leading" selection of N timesteps out of the distilled model's original_inference_steps,
 * the boundary-condition scalings c_skip/c_out, and re-noising with fresh noise between steps.
 */
import { NoiseSchedule, SchedulerConfig } from './noise-schedule';
import { Scheduler, addNoise, epsilonToX0 } from './scheduler';

/** σ_data of the consistency-model boundary condition. */
const SIGMA_DATA = 0.5;

export class LCMScheduler implements Scheduler {
  readonly name = 'lcm';
  readonly schedule: NoiseSchedule;

  constructor(readonly config: SchedulerConfig) {
    this.schedule = new NoiseSchedule(config);
  }

  timesteps(steps: number, strength = 1): number[] {
    const { num_train_timesteps: T, original_inference_steps: original } = this.config;
    // 1. The timesteps the model was distilled on: k-1, 2k-1, …, with k = T / original.
    const k = Math.floor(T / original);
    const originCount = Math.floor(original * strength);
    if (steps > originCount) {
      throw new Error(`LCM can take at most ${originCount} steps at strength ${strength}`);
    }
    const origin: number[] = [];
    for (let i = originCount; i >= 1; i--) origin.push(i * k - 1); // descending
    // 2. N evenly spaced picks from them (np.linspace(0, len, N, endpoint=False), floored).
    const picks: number[] = [];
    for (let i = 0; i < steps; i++) picks.push(origin[Math.floor((i * origin.length) / steps)]);
    return picks;
  }

  /** c_skip and c_out at timestep t (get_scalings_for_boundary_condition_discrete). */
  boundaryScalings(t: number): { cSkip: number; cOut: number } {
    const scaled = t * this.config.timestep_scaling;
    const denom = scaled * scaled + SIGMA_DATA * SIGMA_DATA;
    return { cSkip: (SIGMA_DATA * SIGMA_DATA) / denom, cOut: scaled / Math.sqrt(denom) };
  }

  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array {
    // 1. x0 from ε;  2. denoised = c_out·x0 + c_skip·x_t.
    const x0 = epsilonToX0(this.schedule, modelOutput, sample, t);
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
