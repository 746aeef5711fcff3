/**
 * Configuration from environment variables, parsed once at start-up with zod (the same schema
 * library the API validates requests with). A bad environment fails listing every bad variable;
 * the result is frozen and typed. Each app composes the sections it needs.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { RequestLimits } from '@farm/contracts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();

/** `host:port[,host:port…]`: the nodes of a Redis Cluster, or Sentinels. */
const redisNodes = z
  .string()
  .regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'expected host:port[,host:port…]')
  .transform((v) => v.split(',').map((node) => {
    const [host, port] = node.split(':');
    return { host, port: Number(port) };
  }))
  .refine((nodes) => nodes.every((n) => n.port > 0 && n.port < 65536), 'a port is out of range');

/**
 * Which Redis: one server (REDIS_URL), a Redis Cluster (REDIS_CLUSTER_NODES), or the master a set
 * of Sentinels names (REDIS_SENTINELS, REDIS_SENTINEL_NAME); REDIS_URL's user name and password
 * then apply to the cluster's nodes or the master (redis-target.ts).
 */
export const redisEnv = {
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  REDIS_CLUSTER_NODES: redisNodes.optional(),
  REDIS_SENTINELS: redisNodes.optional(),
  REDIS_SENTINEL_NAME: z.string().regex(/^[\w.-]+$/, 'expected a master name of letters, digits, "_", "." or "-"').optional(),
};

/** Redis and the BullMQ queue. */
export const queueEnv = {
  ...redisEnv,
  /** Key prefix; the braces make it a Redis Cluster hash tag so every key of the farm shares a slot. */
  QUEUE_PREFIX: z.string().min(1).default('{farm}'),
  QUEUE_NAME: z.string().regex(/^[\w-]+$/).default('jobs'),
  /** Finished jobs (and how they ended) kept in Redis for status queries. */
  JOB_RETENTION_SECONDS: positiveInt.default(7 * 24 * 3600),
};

const modelName = /^[\w.-]{1,64}$/;

/** The models the API accepts jobs for (the first is the default); each has its own queue. */
export const modelsEnv = {
  MODELS: z
    .string()
    .default('shapes-ldm')
    .transform((v) => v.split(',').map((m) => m.trim()))
    .refine((models) => models.every((m) => modelName.test(m)), 'expected model[,model…] of letters, digits, "_", "." or "-"'),
};

/** Where results go. Without S3_ENDPOINT the AWS default endpoint for S3_REGION is used. */
export const storageEnv = {
  S3_ENDPOINT: z.url().optional(),
  /** Endpoint written into presigned URLs when clients reach S3 by another address. */
  S3_PUBLIC_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'not a valid bucket name').default('farm-results'),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  /** Path-style URLs (MinIO, s3rver). Default: true when S3_ENDPOINT is set. */
  S3_FORCE_PATH_STYLE: bool.optional(),
  /** Create the bucket at start-up when it is missing (default true). */
  S3_CREATE_BUCKET: bool.default(true),
  PRESIGN_TTL_SECONDS: positiveInt.max(7 * 24 * 3600).default(3600),
  /** How long results and cached latents stay in S3 (a lifecycle rule where the store has them, a sweeper always). */
  RESULT_RETENTION_SECONDS: positiveInt.default(7 * 24 * 3600),
};

/** Webhooks: the master secret tenants' signing secrets derive from (webhooks are off without it). */
export const webhookEnv = {
  WEBHOOK_SECRET: z.string().min(16, 'WEBHOOK_SECRET must have at least 16 characters').optional(),
  /** Let webhooks target loopback and private addresses (trusted networks, tests). */
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
};

/** Request limits, checked by the API on submit and again by the worker before it computes. */
export const limitsEnv = {
  MIN_IMAGE_SIZE: positiveInt.default(64),
  MAX_IMAGE_SIZE: positiveInt.default(2048),
  MAX_STEPS: positiveInt.max(1000).default(50),
  MAX_PROMPT_CHARS: positiveInt.default(1000),
  MAX_REGIONS: positiveInt.max(64).default(8),
  /** Most a job may cost (pixels × lanes × steps, job-cost.ts); dearer ones are refused at submit. */
  MAX_JOB_COST: positiveInt.default(2 ** 27),
};

export function requestLimits(env: {
  MIN_IMAGE_SIZE: number;
  MAX_IMAGE_SIZE: number;
  MAX_STEPS: number;
  MAX_PROMPT_CHARS: number;
  MAX_REGIONS: number;
  MAX_JOB_COST: number;
}): RequestLimits {
  return {
    minSize: env.MIN_IMAGE_SIZE,
    maxSize: env.MAX_IMAGE_SIZE,
    maxSteps: env.MAX_STEPS,
    maxPromptChars: env.MAX_PROMPT_CHARS,
    maxRegions: env.MAX_REGIONS,
    maxJobCost: env.MAX_JOB_COST,
  };
}

const tenantKeys = z
  .string()
  .regex(/^([\w.-]+:[^\s,:]{16,})(,[\w.-]+:[^\s,:]{16,})*$/, 'expected tenant:key[,tenant:key…] with keys of 16+ characters')
  .transform((v) => v.split(',').map((pair) => {
    const [tenant, key] = pair.split(':');
    return { tenant, key };
  }));

export const apiEnv = {
  /** `required` (default): every /v1 route needs `Authorization: Bearer <key>`. `disabled`: one tenant, "public". */
  AUTH: z.enum(['required', 'disabled']).default('required'),
  /** Keys registered (hashed) at start-up, as tenant:key pairs; more are made with POST /admin/api-keys. */
  API_KEYS: tenantKeys.optional(),
  /** Key for the operator routes (/admin/…); they answer 404 without one. */
  ADMIN_API_KEY: z.string().min(16, 'ADMIN_API_KEY must have at least 16 characters').optional(),
  /** Per-tenant submissions per second (sustained) and at once (burst). */
  TENANT_RATE_PER_SECOND: z.coerce.number().positive().default(50),
  TENANT_BURST: positiveInt.default(200),
  /** Per-tenant unfinished jobs. */
  TENANT_MAX_QUEUED: positiveInt.default(5000),
  PORT: port.default(8080),
  HOST: z.string().default('0.0.0.0'),
  /** Largest request body, in bytes (default 1 MiB). */
  BODY_LIMIT_BYTES: positiveInt.default(1024 * 1024),
  /** Origins browsers may call the API from: `https://a.example,https://b.example`, or `*`. Unset: no CORS. */
  CORS_ORIGINS: z
    .string()
    .transform((v) => (v.trim() === '*' ? ('*' as const) : v.split(',').map((o) => o.trim())))
    .refine((v) => v === '*' || v.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'expected * or origins like https://app.example.com[,…] (scheme, host, port; no path)')
    .optional(),
  /** Attempts per job before it is failed for good (transient errors only). */
  JOB_ATTEMPTS: positiveInt.max(20).default(3),
  /** First retry delay; doubles each attempt. */
  JOB_BACKOFF_MS: z.coerce.number().int().min(0).default(2000),
};

export const workerEnv = {
  MODEL_DIR: z.string().min(1).optional(),
  /** The model this worker serves (default: the name of MODEL_DIR's folder). */
  MODEL_NAME: z.string().regex(modelName).optional(),
  EXECUTION_PROVIDER: z.enum(['cpu', 'cuda']).default('cpu'),
  /** CUDA device the worker's sessions run on (EXECUTION_PROVIDER=cuda). */
  CUDA_DEVICE: z.coerce.number().int().min(0).default(0),
  /** Overrides the scheduler the model's scheduler_config.json names. */
  SCHEDULER: z.enum(['euler', 'euler-ancestral', 'lcm', 'ddim']).optional(),
  /** onnxruntime intra-op threads; 0 lets it decide. */
  ORT_THREADS: z.coerce.number().int().min(0).default(0),
  /**
   * The model thread's nice value (Linux, per thread): below the farm's other work's 0, so that
   * work sharing the model's cores does not preempt it. Asked for only while ORT_THREADS leaves a
   * core free (model-priority.ts); needs CAP_SYS_NICE or RLIMIT_NICE, and refused, the worker
   * says so and runs at normal priority.
   */
  MODEL_THREAD_NICE: z.coerce.number().int().min(-20).max(19).default(-10),
  WORKER_ID: z.string().regex(/^[\w.:-]+$/).optional(),
  /** Port of the worker's /metrics and /healthz (0 picks a free one). */
  WORKER_METRICS_PORT: port.default(9464),
  /** Jobs denoising at once in this worker's stream batch. */
  MAX_IN_FLIGHT: positiveInt.max(256).default(8),
  /** Most lanes in one UNet call. */
  MAX_UNET_BATCH: positiveInt.max(256).default(8),
  /**
   * Most memory the worker may hold, MiB: it takes a job only while its memory (the model, a tick's
   * working memory) and its jobs' estimates fit. Default: 90% of the machine's (or cgroup's) memory.
   */
  MAX_WORKER_MEMORY_MB: positiveInt.optional(),
  /** UNet calls of one tick run concurrently (worker concurrency inside the stream batch). */
  UNET_CONCURRENCY: positiveInt.max(16).default(1),
  TEXT_CACHE_SIZE: positiveInt.default(256),
  /** How long finished jobs stay editable from cached state (latent in S3, index in Redis). */
  EDIT_CACHE_TTL_SECONDS: positiveInt.default(24 * 3600),
  /** Edit sources each worker keeps in memory, and the most MiB they may take. */
  EDIT_CACHE_SIZE: positiveInt.default(32),
  EDIT_CACHE_MB: positiveInt.default(256),
  /** How long an edit may wait for the worker holding its source (0: no preference). */
  EDIT_AFFINITY_MS: z.coerce.number().int().min(0).default(2000),
  /** Attach a small preview image to each step's progress (SSE `progress` events). */
  PROGRESS_PREVIEWS: bool.default(true),
  /** Lock held on a running job; extended every half of it. A dead worker's jobs return after it. */
  LOCK_DURATION_MS: positiveInt.min(1000).default(30000),
  /**
   * Longest S3 outage a job waits out without spending attempts: while S3 is down the worker stops
   * taking jobs, and a job that found it down goes back to the queue.
   */
  STORAGE_OUTAGE_BUDGET_MS: z.coerce.number().int().min(0).default(5 * 60 * 1000),
  /** On SIGTERM, how long in-flight jobs may take before they are handed back to the queue. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(25000),
  /** /livez fails when the engine holds jobs and no step ended for this long (a hung engine). */
  ENGINE_STALL_SECONDS: positiveInt.default(120),
};

/** Live sessions (the API and every worker). */
export const sessionEnv = {
  /** A session with no message from its client for this long ends. */
  SESSION_IDLE_SECONDS: positiveInt.max(7 * 24 * 3600).default(300),
  /** Largest message a session's client may send, in bytes (a larger one gets an error message). */
  SESSION_MAX_MESSAGE_BYTES: positiveInt.max(64 * 1024 * 1024).default(2 * 1024 * 1024),
  /** Bytes a session's socket may have waiting to be sent before its frames are dropped (a client not reading). */
  SESSION_MAX_BUFFERED_BYTES: positiveInt.max(256 * 1024 * 1024).default(1024 * 1024),
};

/** The first hash tag of a key prefix (`{farm}` → `farm`), as Redis Cluster finds it; null without one. */
export function hashTag(prefix: string): string | null {
  return /^[^{]*\{([^}]+)\}/.exec(prefix)?.[1] ?? null;
}

/**
 * Rules between variables, as `[variable, problem]` pairs; a rule looks only at variables the
 * process reads (the others are undefined here).
 */
function crossVariableProblems(v: Record<string, unknown>): Array<[string, string]> {
  const problems: Array<[string, string]> = [];
  if (v.REDIS_CLUSTER_NODES && v.REDIS_SENTINELS) problems.push(['REDIS_SENTINELS', 'set REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both']);
  if (v.REDIS_SENTINELS && !v.REDIS_SENTINEL_NAME) problems.push(['REDIS_SENTINEL_NAME', "required with REDIS_SENTINELS (the master's name the Sentinels monitor)"]);
  if (v.REDIS_SENTINEL_NAME && !v.REDIS_SENTINELS) problems.push(['REDIS_SENTINEL_NAME', 'set only with REDIS_SENTINELS']);
  if ((v.REDIS_CLUSTER_NODES || v.REDIS_SENTINELS) && typeof v.REDIS_URL === 'string' && v.REDIS_URL.startsWith('rediss:')) {
    problems.push(['REDIS_URL', 'TLS (rediss:) is supported with a single server only, not with REDIS_CLUSTER_NODES or REDIS_SENTINELS']);
  }
  if (v.REDIS_CLUSTER_NODES && typeof v.QUEUE_PREFIX === 'string' && !hashTag(v.QUEUE_PREFIX)) {
    problems.push(['QUEUE_PREFIX', 'with REDIS_CLUSTER_NODES it must contain a hash tag such as {farm}, so that every key of the farm lands in one slot']);
  }
  return problems;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Variables given as files: for every variable of `shape` that is not set, `<NAME>_FILE` names a
 * file holding its value (trimmed) — the convention of Docker and Kubernetes secrets.
 */
function readFileVariables(shape: z.ZodRawShape, present: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(shape)) {
    const file = present[`${name}_FILE`];
    if (present[name] !== undefined || file === undefined) continue;
    try {
      present[name] = readFileSync(file, 'utf8').trim();
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return problems;
}

/**
 * Parses `env` against the given sections (a variable may come from a file: `<NAME>_FILE`);
 * throws one ConfigError naming every bad variable.
 */
export function loadConfig<S extends z.ZodRawShape>(shape: S, env: NodeJS.ProcessEnv = process.env): Readonly<z.output<z.ZodObject<S>>> {
  const present = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
  const problems = readFileVariables(shape, present);
  const parsed = z.object(shape).safeParse(present);
  if (!parsed.success) problems.push(...parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  else problems.push(...crossVariableProblems(parsed.data).map(([name, problem]) => `${name}: ${problem}`));
  if (problems.length > 0) throw new ConfigError(`invalid environment: ${problems.join('; ')}`);
  return Object.freeze(parsed.data!);
}
