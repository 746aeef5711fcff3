/**
 * A job's cost, known at submit: the denoising work it asks for, in pixel-steps — its canvas's
 * pixels × its lanes × its denoising steps. Lanes: the prompt and each region (1 + regions),
 * doubled under classifier-free guidance (guidanceScale > 1 on a model that runs it; a model that
 * embeds the scale runs no second lane). Steps: those the scheduler runs (an edit at strength s:
 * ⌊steps·s⌋ with spaced schedulers, `steps` with LCM's). An edit counts its whole source canvas,
 * a bound on what it recomputes (a mask edit denoises only around its mask). A control image, a
 * prompt edit's probe and panorama tiles' overlaps are not counted. Pure: the API refuses a job
 * above MAX_JOB_COST with it, and a worker's memory estimate of a job starts from it.
 */
import { z } from 'zod';
import type { JobRequest } from './job-request';
import { ModelCapabilities, editStrength } from './model-capabilities';

export const jobCostSchema = z
  .object({
    pixels: z.int().min(0).meta({ description: "The canvas's pixels (an edit's: its source's)" }),
    lanes: z.int().min(1).meta({ description: '1 + regions, × 2 under classifier-free guidance' }),
    steps: z.int().min(0).meta({ description: 'Denoising steps the scheduler runs' }),
    total: z.int().min(0).meta({ description: 'pixels × lanes × steps' }),
  })
  .meta({ id: 'JobCost', description: "The job's denoising work in pixel-steps, as MAX_JOB_COST measures it" });
export type JobCost = z.infer<typeof jobCostSchema>;

/** The canvas a job paints: its size, or for an edit its source's. */
export interface Canvas {
  width: number;
  height: number;
}

/**
 * The cost of `request` on `canvas` for a model with `caps` (null: not known yet — counted as
 * the dearest: guidance doubles the lanes, steps are spaced).
 */
export function jobCost(request: JobRequest, canvas: Canvas, caps: ModelCapabilities | null): JobCost {
  const pixels = canvas.width * canvas.height;
  const cfg = request.guidanceScale > 1 && caps?.guidance.kind !== 'embedded';
  const lanes = (1 + (request.regions?.length ?? 0)) * (cfg ? 2 : 1);
  const strength = request.type === 'edit' ? editStrength(request) : 1;
  const steps = caps?.sampler.kind === 'lcm' ? request.steps : Math.floor(request.steps * strength);
  return { pixels, lanes, steps, total: pixels * lanes * steps };
}

/** A refused job's cost beside the farm's ceiling, as the `job_too_costly` error carries them. */
export const jobCostExcessSchema = jobCostSchema
  .extend({ limit: z.int().min(0).meta({ description: 'The most a job may cost on this farm (MAX_JOB_COST)' }) })
  .meta({ id: 'JobCostExcess', description: '`job_too_costly`: the job\'s cost and the ceiling it is over' });
export type JobCostExcess = z.infer<typeof jobCostExcessSchema>;

/** The message of a job over the ceiling (null when it is within it). */
export function costProblem(cost: JobCost, limit: number): string | null {
  if (cost.total <= limit) return null;
  return `the job costs ${cost.total} pixel-steps (${cost.pixels} pixels × ${cost.lanes} lanes × ${cost.steps} steps); this farm takes at most ${limit} per job (MAX_JOB_COST): fewer pixels, regions or steps, or no guidance, would fit`;
}
