/**
 * What a model can serve, as its workers publish it at start-up, and the pure check of a request
 * against it (the API runs it at submit, so a request the model cannot serve is a 400 naming the
 * field instead of a job that fails). Workers derive the capabilities from the model's signature
 * and scheduler; nothing here loads a model.
 */
import { EditRequest, FieldProblem, JobRequest, isPromptEdit } from './job-request';

/**
 * How a scheduler turns (steps, strength) into a plan: `spaced` schedulers (Euler, DDIM) run the
 * last ⌊steps·strength⌋ of `steps` spaced timesteps (diffusers' `get_timesteps`); `lcm` picks
 * `steps` of the first ⌊originalSteps·strength⌋ distilled timesteps (LCMScheduler.set_timesteps).
 */
export type SamplerSteps = { kind: 'spaced' } | { kind: 'lcm'; originalSteps: number };

/** How the model takes guidance: classifier-free (an extra lane when > 1), or embedded (LCM's w). */
export type GuidanceCapability = { kind: 'cfg' } | { kind: 'embedded'; min: number; max: number };

export interface ModelCapabilities {
  /** Image sides must be multiples of this many pixels (the VAE's pixels per latent cell). */
  sizeMultiple: number;
  guidance: GuidanceCapability;
  sampler: SamplerSteps;
}

/** Why `steps` at `strength` give no plan for this sampler (null when they give one). */
export function sampleStepsProblem(sampler: SamplerSteps, steps: number, strength: number): string | null {
  if (sampler.kind === 'spaced') {
    return Math.floor(steps * strength) >= 1 ? null : `steps × strength must make at least one step (${steps} × ${strength} makes none)`;
  }
  const usable = Math.floor(sampler.originalSteps * strength);
  if (steps > sampler.originalSteps) return `steps must be at most ${sampler.originalSteps} for this model (its distilled schedule has ${sampler.originalSteps})`;
  return Math.floor(usable / steps) >= 1 ? null : `steps must be at most ${usable} at strength ${strength} for this model (${sampler.originalSteps} distilled steps × strength)`;
}

/** An edit's strength: its own, or 0.75 for prompt edits and 1 for mask edits. */
export function editStrength(edit: Pick<EditRequest, 'strength' | 'mask' | 'regions'>): number {
  return edit.strength ?? (isPromptEdit(edit) ? 0.75 : 1);
}

/** Every field of `request` the model cannot serve (empty when it can serve them all). */
export function capabilityProblems(request: JobRequest, caps: ModelCapabilities): FieldProblem[] {
  const problems: FieldProblem[] = [];
  if (request.type === 'generate') {
    for (const axis of ['width', 'height'] as const) {
      if (request[axis] % caps.sizeMultiple !== 0) problems.push({ path: axis, message: `${axis} must be a multiple of ${caps.sizeMultiple} for this model` });
    }
  }
  const { guidance } = caps;
  if (guidance.kind === 'embedded' && (request.guidanceScale < guidance.min || request.guidanceScale > guidance.max)) {
    problems.push({
      path: 'guidanceScale',
      message: `guidanceScale must be ${guidance.min} … ${guidance.max} for this model (it embeds the guidance scale instead of running classifier-free guidance)`,
    });
  }
  const strength = request.type === 'edit' ? editStrength(request) : 1;
  const steps = sampleStepsProblem(caps.sampler, request.steps, strength);
  if (steps) problems.push({ path: request.type === 'edit' ? 'strength' : 'steps', message: steps });
  return problems;
}
