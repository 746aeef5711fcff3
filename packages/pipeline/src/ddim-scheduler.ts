/**
 * DDIM (η = 0), as diffusers' DDIMScheduler with "leading" timestep spacing: the classic
 * deterministic sampler for models that were not distilled for few steps.
 */
import { NoiseSchedule, SchedulerConfig } from './noise-schedule';
import { Scheduler, epsilonToX0 } from './scheduler';

export class DDIMScheduler implements Scheduler {
  readonly name = 'ddim';
  readonly schedule: NoiseSchedule;

  constructor(readonly config: SchedulerConfig) {
    this.schedule = new NoiseSchedule(config);
  }

  timesteps(steps: number, strength = 1): number[] {
    const T = this.config.num_train_timesteps;
    if (steps > T) throw new Error(`DDIM can take at most ${T} steps`);
    const ratio = Math.floor(T / steps);
    const all: number[] = [];
    for (let i = steps - 1; i >= 0; i--) all.push(i * ratio + this.config.steps_offset);
    // img2img: skip the first (1 − strength) of the plan, as diffusers' get_timesteps.
    const keep = Math.min(Math.floor(steps * strength), steps);
    return all.slice(steps - keep);
  }

  denoise(modelOutput: Float32Array, sample: Float32Array, t: number): Float32Array {
    return epsilonToX0(this.schedule, modelOutput, sample, t);
  }

  advance(
    denoised: Float32Array,
    sample: Float32Array,
    t: number,
    prevTimestep: number | null,
  ): Float32Array {
    if (prevTimestep === null) return denoised;
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
