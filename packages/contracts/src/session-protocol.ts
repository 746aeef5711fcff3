/**
 * Live canvas sessions: what `POST /v1/sessions` accepts, the messages a client sends on the
 * session's WebSocket (updates with the whole canvas state or a patch of it, commit, keyframe) and the
 * ones it receives (frames, progress, commits, errors), and how an update applies to a canvas
 * state. A canvas state is a generation request in all but name (its regions keyed by id), so
 * it is validated by the job schema and a committed frame's job carries it as its request.
 */
import { z } from 'zod';
import { DEFAULT_LIMITS, DEFAULT_PRIORITY, DEFAULT_WEBHOOK_EVENTS, FieldProblem, GenerateRequest, RequestLimits, describeIssues, jobRequestSchema, parseJobRequest } from './job-request';
import { costProblem, jobCost } from './job-cost';

/**
 * A region's id within a session: the palette's colour, say. Not all digits, so that an object's
 * keys keep the order they were added in (JavaScript lists integer keys first).
 */
export const REGION_ID = /^(?!\d+$)[\w-]{1,64}$/;
const regionId = z.string().regex(REGION_ID, 'region ids are 1-64 letters, digits, "_" or "-", not all digits');

/** The generation request's fields, as sessions reuse them. */
function generateFields(limits: RequestLimits) {
  const [generate] = jobRequestSchema(limits).options;
  const { shape } = generate;
  return { shape, region: shape.regions.unwrap().element };
}

export function sessionRequestSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const { shape, region } = generateFields(limits);
  return z.strictObject({
    prompt: shape.prompt,
    negativePrompt: shape.negativePrompt,
    width: shape.width,
    height: shape.height,
    steps: shape.steps,
    guidanceScale: shape.guidanceScale,
    seed: shape.seed,
    /** The format of the frames' tiles and of committed images. */
    format: shape.format,
    model: shape.model,
    /** Region prompts by id; later ids in the object lie over earlier ones. */
    regions: z.record(regionId, region).optional(),
  });
}
export type SessionRequest = z.output<ReturnType<typeof sessionRequestSchema>>;

/** `201` to `POST /v1/sessions`. */
export const sessionCreatedSchema = z.object({
  id: z.string(),
  /** Single-use, for opening the socket where headers cannot be set (browsers): `?token=`. */
  token: z.string(),
  tokenExpiresInSeconds: z.int(),
  /** The seed the session renders with (the request's, or one picked for it). */
  seed: z.int(),
  links: z.object({ ws: z.string() }),
});
export type SessionCreated = z.infer<typeof sessionCreatedSchema>;

export function clientMessageSchema(limits: RequestLimits = DEFAULT_LIMITS) {
  const { shape, region } = generateFields(limits);
  const update = z.strictObject({
    type: z.literal('update'),
    /** The client's own counter; frames name the update they reflect (`basedOn`). */
    seq: z.int().min(0),
    prompt: shape.prompt.optional(),
    negativePrompt: shape.negativePrompt,
    seed: shape.seed,
    /** Regions to set (a region replaces the one of its id) or remove (null). */
    regions: z.record(regionId, region.nullable()).optional(),
    /** The whole state: regions left out are removed, as is a negative prompt left out. */
    replace: z.boolean().default(false),
  });
  const commit = z.strictObject({ type: z.literal('commit') });
  /** Asks for the whole current frame (a client that lost track of its tiles). */
  const keyframe = z.strictObject({ type: z.literal('keyframe') });
  return z.discriminatedUnion('type', [update, commit, keyframe], {
    error: (issue) => (issue.code === 'invalid_union' ? 'type must be one of: update, commit, keyframe' : undefined),
  });
}
export type ClientMessage = z.output<ReturnType<typeof clientMessageSchema>>;
export type SessionUpdate = Extract<ClientMessage, { type: 'update' }>;
export type SessionRegion = NonNullable<SessionRequest['regions']>[string];

/** What a session renders: the prompts, the seed and the regions, as of update `seq`. */
export interface CanvasState {
  /** The last update applied (0: the state the session was opened with). */
  seq: number;
  prompt: string;
  negativePrompt?: string;
  seed: number;
  regions: Record<string, SessionRegion>;
}

/** What stays fixed for a session's life. */
export interface SessionSpec {
  width: number;
  height: number;
  steps: number;
  guidanceScale: number;
  format: GenerateRequest['format'];
  model: string;
}

/** A pixel rectangle of a frame. */
export interface Tile {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Messages a client receives (JSON text; a frame's tiles follow it as binary messages, in order). */
export type ServerMessage =
  | { type: 'frame'; seq: number; basedOn: number; format: GenerateRequest['format']; tiles: Tile[] }
  | { type: 'progress'; basedOn: number; step: number; total: number; preview: string }
  | { type: 'committed'; basedOn: number; job: { id: string; url: string; links: { self: string } } }
  | { type: 'resumed'; from: 'commit' | 'regenerated' }
  | { type: 'error'; code: string; message: string; seq?: number; fields?: FieldProblem[] };

/** The state an update leads to (pure; validity is `checkCanvasState`'s). */
export function applyUpdate(state: CanvasState, update: SessionUpdate): CanvasState {
  const regions: Record<string, SessionRegion> = update.replace ? {} : { ...state.regions };
  for (const [id, region] of Object.entries(update.regions ?? {})) {
    if (region === null) delete regions[id];
    else regions[id] = region;
  }
  return {
    seq: update.seq,
    prompt: update.prompt ?? state.prompt,
    negativePrompt: update.replace ? update.negativePrompt : (update.negativePrompt ?? state.negativePrompt),
    seed: update.seed ?? state.seed,
    regions,
  };
}

/** The generation request a state stands for (regions in id order of the object). */
export function canvasRequest(state: CanvasState, spec: SessionSpec): GenerateRequest {
  return {
    type: 'generate',
    prompt: state.prompt,
    negativePrompt: state.negativePrompt,
    width: spec.width,
    height: spec.height,
    steps: spec.steps,
    guidanceScale: spec.guidanceScale,
    seed: state.seed,
    format: spec.format,
    model: spec.model,
    priority: DEFAULT_PRIORITY,
    webhookEvents: DEFAULT_WEBHOOK_EVENTS,
    regions: Object.values(state.regions),
  };
}

/**
 * Problems of a state as a whole (the number of regions, say), named by region id. A render of it
 * may cost no more than a job (MAX_JOB_COST; counted as if the model ran guidance, job-cost.ts).
 */
export function checkCanvasState(state: CanvasState, spec: SessionSpec, limits: RequestLimits): FieldProblem[] {
  const parsed = parseJobRequest(canvasRequest(state, spec), limits);
  if (parsed.ok) {
    const problem = costProblem(jobCost(parsed.value, spec, null), limits.maxJobCost);
    return problem ? [{ path: '(body)', message: `a frame of this canvas ${problem.replace(/^the job /, '')}` }] : [];
  }
  const ids = Object.keys(state.regions);
  return parsed.problems.map((p) => ({ ...p, path: p.path.replace(/^regions\.(\d+)/, (_, i: string) => `regions.${ids[Number(i)]}`) }));
}

export type ClientParse = { ok: true; value: ClientMessage } | { ok: false; problems: FieldProblem[] };

/** Parses a client message (JSON text already decoded). */
export function parseClientMessage(body: unknown, schema: ReturnType<typeof clientMessageSchema>): ClientParse {
  const parsed = schema.safeParse(body);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, problems: describeIssues(parsed.error.issues) };
}
