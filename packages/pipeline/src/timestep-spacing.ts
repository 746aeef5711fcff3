/**
 * Which timesteps N inference steps visit, as diffusers' schedulers compute them from
 * `timestep_spacing` ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2),
 * and where an image-to-image job (strength < 1) starts in that plan (the pipelines'
 * `get_timesteps`). Reference: diffusers v0.40.0, scheduling_euler_discrete.py and
 * scheduling_ddim.py `set_timesteps`, pipeline_stable_diffusion_img2img.py `get_timesteps`.
 */
import { InvalidJobError, sampleStepsProblem } from '@farm/contracts';
import type { SchedulerConfig } from './noise-schedule';

/** numpy's round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Descending timesteps. Euler-family schedulers keep linspace's fractional values (float32);
 * DDIM rounds them (`integer`).
 */
export function spacedTimesteps(config: SchedulerConfig, steps: number, integer: boolean): number[] {
  const T = config.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new InvalidJobError(`steps must be 1 … ${T}`);
  const out: number[] = [];
  switch (config.timestep_spacing) {
    case 'linspace':
      // np.linspace(0, T-1, N)[::-1] (float32 for Euler, rounded for DDIM).
      for (let i = steps - 1; i >= 0; i--) {
        const v = steps === 1 ? 0 : i === steps - 1 ? T - 1 : i * ((T - 1) / (steps - 1));
        out.push(integer ? roundHalfEven(v) : Math.fround(v));
      }
      break;
    case 'leading': {
      // (arange(N) · (T // N)) reversed, + steps_offset.
      const ratio = Math.floor(T / steps);
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.steps_offset);
      break;
    }
    case 'trailing': {
      // round(arange(T, 0, −T/N)) − 1 (numpy's arange length and values, float64).
      const delta = -T / steps;
      const count = Math.ceil(-T / delta);
      for (let i = 0; i < count; i++) out.push(roundHalfEven(T + i * delta) - 1);
      break;
    }
  }
  return out;
}

/**
 * The part of an N-step plan an image-to-image job runs: the last ⌊N·strength⌋ steps. None is a
 * request the scheduler cannot serve (diffusers raises too), refused with the rule it broke.
 */
export function startAt(plan: readonly number[], strength: number): number[] {
  const problem = sampleStepsProblem({ kind: 'spaced' }, plan.length, strength);
  if (problem) throw new InvalidJobError(problem);
  const keep = Math.min(Math.floor(plan.length * strength), plan.length);
  return plan.slice(plan.length - keep);
}
