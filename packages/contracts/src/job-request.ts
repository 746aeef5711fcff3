/**
 * The job request schema: what `POST /v1/jobs` accepts (the queued job, in queue.ts, extends it
 * with what the API decides). Limits come from configuration, so the schema is built by a
 * factory; the defaults below are the ones the README documents.
 */
import { z } from 'zod';

export interface RequestLimits {
  /** Smallest width/height in pixels (default 64). */
  minSize: number;
  /** Largest width/height in pixels (default 2048). */
  maxSize: number;
  /** Most denoising steps a job may ask for (default 50). */
  maxSteps: number;
  /** Longest prompt in characters (default 1000). */
  maxPromptChars: number;
  /** Most region prompts in one job (default 8). */
  maxRegions: number;
  /** Most a job may cost, in pixel-steps (job-cost.ts; default 2^27: a 1024×1024 image at 128 lane-steps). */
  maxJobCost: number;
}

export const DEFAULT_LIMITS: Readonly<RequestLimits> = Object.freeze({
  minSize: 64,
  maxSize: 2048,
  maxSteps: 50,
  maxPromptChars: 1000,
  maxRegions: 8,
  maxJobCost: 2 ** 27,
});

/** Most pixels a mask image may declare; larger ones are refused from their header (no bombs). */
export const MAX_MASK_PIXELS = 4096 * 4096;

/** Longest base64 mask image accepted (characters; the body limit applies first). */
export const MAX_MASK_BASE64 = 8 * 1024 * 1024;

/** Image sides are multiples of this many pixels (a latent cell of the VAE). */
export const SIDE_MULTIPLE = 8;

/** How the document describes an embedded image. */
const BASE64_IMAGE = { contentEncoding: 'base64', description: 'A PNG, JPEG or WebP image, base64-encoded' } as const;

export const IMAGE_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/**
 * The events a job's webhook may get (its `webhookEvents`): `started` (the job entered a worker's
 * stream batch), `progress` (its denoising steps, at most one delivery a second), `completed` (its
 * final state: succeeded, failed or canceled).
 */
export const WEBHOOK_EVENTS = ['started', 'progress', 'completed'] as const;
export type WebhookEventName = (typeof WEBHOOK_EVENTS)[number];

/** Defaults of fields a job built by the farm itself (a session's commit) fills in too. */
export const DEFAULT_PRIORITY = 5;
export const DEFAULT_WEBHOOK_EVENTS: WebhookEventName[] = ['completed'];

export const CONTENT_TYPES: Readonly<Record<ImageFormat, string>> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
};

export function jobRequestSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const size = (axis: string) =>
    z
      .int(`${axis} must be an integer`)
      .min(limits.minSize, `${axis} must be at least ${limits.minSize}`)
      .max(limits.maxSize, `${axis} must be at most ${limits.maxSize}`)
      .multipleOf(SIDE_MULTIPLE, `${axis} must be a multiple of ${SIDE_MULTIPLE}`)
      // zod-to-openapi leaves zod's multipleOf out of the document: state it there too.
      .meta({ multipleOf: SIDE_MULTIPLE });
  const prompt = z
    .string()
    .max(limits.maxPromptChars, `prompts are limited to ${limits.maxPromptChars} characters`);

  const coordinate = z.number().min(-1e5).max(1e5);
  const extent = z.number().positive().max(1e5);
  const mask = z.union(
    [
      z.strictObject({ png: z.base64('mask.png must be base64').max(MAX_MASK_BASE64, 'mask.png is too large').meta(BASE64_IMAGE) }),
      z.strictObject({
        rects: z
          .array(z.tuple([coordinate, coordinate, extent, extent], 'a rect is [x, y, w, h] with w, h > 0'))
          .min(1)
          .max(64),
      }),
      z.strictObject({
        polygons: z
          .array(z.array(z.tuple([coordinate, coordinate], 'a point is [x, y]')).min(3, 'a polygon needs at least 3 points').max(1000))
          .min(1)
          .max(32),
      }),
    ],
    { error: 'mask must be one of {"png": base64}, {"rects": [[x, y, w, h], …]}, {"polygons": [[[x, y], …], …]}' },
  ).meta({ id: 'Mask', description: 'White (png) or inside (rects, polygons) = the region; coordinates in canvas pixels' });
  // A pattern rather than a refinement, so the document states it too.
  const nonEmptyPrompt = prompt.regex(/\S/, 'prompt must not be empty');
  const steps = z.int().min(1).max(limits.maxSteps, `steps must be at most ${limits.maxSteps}`).default(4);
  const guidanceScale = z.number().min(0).max(20).default(1);
  const seed = z.int().min(0).max(0xffffffff).optional();
  const format = z.enum(IMAGE_FORMATS).default('png');
  /** 1 (first) … 10 (last): order among the same tenant's jobs; tenants take turns whatever it is. */
  const priority = z.int().min(1).max(10, 'priority is 1 (first) to 10 (last)').default(DEFAULT_PRIORITY);
  /** The model to run on (default: the farm's first model; edits: their source's). */
  const model = z.string().regex(/^[\w.-]{1,64}$/, 'model is 1-64 letters, digits, "_", "." or "-"').optional();
  /** Called on completion or failure, signed (Standard Webhooks). */
  const webhook = z.url({ protocol: /^https?$/, error: 'webhook must be an http(s) URL' }).max(2048).optional();
  /** Which events go to the webhook; the final state only, unless the job asks for more. */
  const webhookEvents = z
    .array(z.enum(WEBHOOK_EVENTS, { error: `webhookEvents are among: ${WEBHOOK_EVENTS.join(', ')}` }))
    .min(1, 'webhookEvents needs at least one event (leave webhook out for none)')
    .refine((events) => new Set(events).size === events.length, 'webhookEvents lists an event twice')
    .default(DEFAULT_WEBHOOK_EVENTS)
    .meta({
      uniqueItems: true,
      description: 'Events delivered to `webhook`: `started`, `progress` (at most one a second), `completed` (succeeded, failed or canceled)',
    });
  const region = z.strictObject({
    prompt: nonEmptyPrompt,
    mask,
    strength: z.number().min(0).max(1).default(1),
  });

  const regions = z.array(region).max(limits.maxRegions, `at most ${limits.maxRegions} regions`).optional();
  /**
   * A control image for the model's ControlNet: the image's shapes follow its layout, the prompt
   * sets the rest. `type` is a kind the model was trained for (the bundled model: `edges`, white
   * outlines on black; `layout`, white silhouettes on black).
   */
  const control = z
    .strictObject({
      image: z.base64('control.image must be base64').max(MAX_MASK_BASE64, 'control.image is too large'),
      type: z.string().regex(/^[\w-]{1,32}$/, 'control.type is 1-32 letters, digits, "_" or "-"'),
      scale: z.number().min(0).max(2).default(1),
    })
    .optional();

  const generate = z
    .strictObject({
      type: z.literal('generate'),
      prompt: nonEmptyPrompt,
      negativePrompt: prompt.optional(),
      width: size('width').default(512),
      height: size('height').default(512),
      steps,
      guidanceScale,
      seed,
      format,
      regions,
      control,
      model,
      priority,
      webhook,
      webhookEvents,
    })
    .meta({ title: 'Generate', description: 'Generate an image from a prompt (and regions, and a control image)' });

  const edit = z
    .strictObject({
      type: z.literal('edit'),
      /** A finished job's id, or an uploaded image (PNG, JPEG or WebP; sides multiples of 8). */
      source: z.union([z.string().regex(/^[\w-]{1,128}$/), z.strictObject({ image: z.base64('source.image must be base64').max(MAX_MASK_BASE64, 'source.image is too large').meta(BASE64_IMAGE) })], {
        error: 'source must be a job id or {"image": base64}',
      }),
      /** With a mask: the prompt for the masked area. Without: the new prompt of the whole image. */
      prompt: nonEmptyPrompt,
      negativePrompt: prompt.optional(),
      mask: mask.optional(),
      /** Region prompts painted in, each over its own mask (joined to the edit's mask). */
      regions,
      steps,
      /** How far the changed area is re-noised: default 1 for mask edits, 0.75 for prompt edits. */
      strength: z.number().gt(0, 'strength must be above 0').max(1).optional(),
      guidanceScale,
      seed,
      format,
      model,
      priority,
      webhook,
      webhookEvents,
    })
    .refine((e) => !isPromptEdit(e) || typeof e.source === 'string', {
      message: 'a prompt edit (no mask, no regions) needs a previous job as its source',
      path: ['mask'],
    })
    .meta({ title: 'Edit', description: "Re-render part of a finished job's image, or of an uploaded one" });

  return z
    .discriminatedUnion('type', [generate, edit], {
      error: (issue) => (issue.code === 'invalid_union' ? 'type must be one of: generate, edit' : undefined),
    })
    // Not a named component: inlined in the request body, generated clients (openapi-typescript)
    // keep the fields that have a default optional, as they are.
    .meta({ description: 'A job as submitted: fields with a default may be left out' });
}

/** What the API decides for every request it accepts: the seed (when the request has none) and the model. */
export const DECIDED_FIELDS = { seed: z.int().min(0).max(0xffffffff), model: z.string().regex(/^[\w.-]{1,64}$/) };

/**
 * A request as the API accepted it, as a job shows it: defaults applied, its seed and model
 * decided. Other fields may follow (the queue's own), so the variants are open.
 */
export function acceptedRequestSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const [generate, edit] = jobRequestSchema(limits).options;
  return z
    .discriminatedUnion('type', [generate.loose().extend(DECIDED_FIELDS).meta({ id: 'AcceptedGenerateRequest' }), edit.loose().safeExtend(DECIDED_FIELDS).meta({ id: 'AcceptedEditRequest' })])
    .meta({ id: 'AcceptedJobRequest', description: 'The request as accepted: defaults applied, seed and model decided' });
}

/**
 * An edit with neither a mask nor regions is a prompt edit: the farm finds what to change from the
 * prompt's difference to its source's (so its source must be a job, and its default strength is lower).
 */
export function isPromptEdit(edit: { mask?: unknown; regions?: readonly unknown[] }): boolean {
  return edit.mask === undefined && (edit.regions?.length ?? 0) === 0;
}

/** A validated request, defaults filled in. */
export type JobRequest = z.output<ReturnType<typeof jobRequestSchema>>;
export type GenerateRequest = Extract<JobRequest, { type: 'generate' }>;
export type EditRequest = Extract<JobRequest, { type: 'edit' }>;
export type RegionRequest = NonNullable<GenerateRequest['regions']>[number];
export type ControlRequest = NonNullable<GenerateRequest['control']>;
export type MaskRequest = RegionRequest['mask'];
export interface FieldProblem {
  path: string;
  message: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; problems: FieldProblem[] };

/** Schemas built once per limits object: building one costs far more than a parse. */
const schemas = new WeakMap<RequestLimits, ReturnType<typeof jobRequestSchema>>();

/** Validates a request body and names every offending field. */
export function parseJobRequest(body: unknown, limits: RequestLimits = DEFAULT_LIMITS): ParseResult<JobRequest> {
  let schema = schemas.get(limits);
  if (!schema) schemas.set(limits, (schema = jobRequestSchema(limits)));
  const parsed = schema.safeParse(body);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, problems: describeIssues(parsed.error.issues) };
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): FieldProblem[] {
  return issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({
        path: [...issue.path, key].join('.'),
        message: `unknown field "${key}"`,
      }));
    }
    return [{ path: issue.path.join('.') || '(body)', message: issue.message }];
  });
}
