/**
 * Euler Ancestral (k-diffusion's sample_euler_ancestral, η = 1) as diffusers'
 * EulerAncestralDiscreteScheduler computes it (v0.40.0, scheduling_euler_ancestral_discrete.py):
 * Euler's timesteps, σ and x0, then a deterministic step down to σ_down and fresh noise of σ_up:
 *   σ_up = √(σ'²·(σ² − σ'²)/σ²),  σ_down = √(σ'² − σ_up²)
 *   x_σ' = x_σ + (x_σ − x0)/σ · (σ_down − σ) + σ_up·z
 */
import { EulerScheduler } from './euler-scheduler';
import type { SchedulerName } from './scheduler';

export class EulerAncestralScheduler extends EulerScheduler {
  override readonly name: SchedulerName = 'euler-ancestral';

  /** σ_up and σ_down of a step from σ to σ'. */
  static ancestralSigmas(sigma: number, next: number): { up: number; down: number } {
    const up = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
    return { up, down: Math.sqrt(next * next - up * up) };
  }

  override advance(denoised: Float32Array, sample: Float32Array, t: number, prevTimestep: number | null, noise: Float32Array): Float32Array {
    const sigma = this.schedule.sigma(t);
    const next = this.sigmaAfter(prevTimestep);
    const { up, down } = EulerAncestralScheduler.ancestralSigmas(sigma, next);
    return this.step(denoised, sample, sigma, next, down, noise, up);
  }
}
