/**
 * FarmClient: the farm's HTTP API as typed methods on the global `fetch`. Every call sends
 * `Authorization: Bearer <apiKey>` when a key is set, and every failed call throws a
 * FarmApiError. `waitFor` follows a job's event stream to its final state and falls back to
 * polling `GET /v1/jobs/:id` when the stream cannot be opened or breaks.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { JobProgress, JobView } from '@farm/contracts';
import type { FleetView, HealthView, JobSubmission, WorkerView } from './api-types';
import { FarmApiError, isAbortError } from './farm-api-error';
import { type JobEvent, decodeJobEvent, isFinalEvent, isFinalStatus } from './job-events';
import { type EventSourceMessage, readServerSentEvents } from './server-sent-events';

export interface FarmClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` on every API request. */
  apiKey?: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface SubmitOptions extends CallOptions {
  /**
   * Sent as `Idempotency-Key`: submitting the same body again with the same key answers the
   * job of the first submission instead of queuing another (safe retries).
   */
  idempotencyKey?: string;
}

export interface WaitOptions extends CallOptions {
  /** Called for each new step, in order (never twice for one step, never backwards). */
  onProgress?: (progress: JobProgress) => void;
  /** Called for every event of the stream (not while polling). */
  onEvent?: (event: JobEvent) => void;
  /** Polling period once the stream is given up (default 500 ms). */
  pollIntervalMs?: number;
  /** Consecutive failed polls tolerated before giving up (default 5). */
  maxPollFailures?: number;
}

/** Where `FarmClient.fromEnv` points without FARM_API_URL. */
export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

interface SendOptions extends CallOptions {
  body?: unknown;
  accept?: string;
  /** Non-2xx statuses that are answers, not errors. */
  accepted?: number[];
  headers?: Record<string, string>;
}

export class FarmClient {
  readonly baseUrl: string;
  private readonly apiKey?: string;
  private readonly fetchImpl: typeof fetch;

  constructor(options: FarmClientOptions) {
    const url = new URL(options.baseUrl); // throws TypeError for a malformed URL
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`baseUrl must be http(s): ${options.baseUrl}`);
    this.baseUrl = url.href.replace(/\/+$/, '');
    this.apiKey = options.apiKey || undefined;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** A client configured from FARM_API_URL (default http://127.0.0.1:8080) and FARM_API_KEY. */
  static fromEnv(env: Record<string, string | undefined> = process.env, overrides: Partial<FarmClientOptions> = {}): FarmClient {
    return new FarmClient({ baseUrl: env.FARM_API_URL || DEFAULT_API_URL, apiKey: env.FARM_API_KEY, ...overrides });
  }

  /** `POST /v1/jobs`: queues a job; answers the queued job. Invalid requests: 400 `invalid_request` with `fields`; over quota: 429. */
  async submit(request: JobSubmission, options: SubmitOptions = {}): Promise<JobView> {
    const headers: Record<string, string> = options.idempotencyKey ? { 'Idempotency-Key': options.idempotencyKey } : {};
    return (await this.send('POST', '/v1/jobs', { signal: options.signal, body: request, headers })).json() as Promise<JobView>;
  }

  /** `GET /v1/jobs/:id`. Unknown ids: 404 `not_found`. */
  async get(id: string, options: CallOptions = {}): Promise<JobView> {
    return (await this.send('GET', jobPath(id), options)).json() as Promise<JobView>;
  }

  /** `DELETE /v1/jobs/:id`: cancels a queued or running job. A finished one: 409 `job_finished`. */
  async cancel(id: string, options: CallOptions = {}): Promise<JobView> {
    return (await this.send('DELETE', jobPath(id), options)).json() as Promise<JobView>;
  }

  /** `GET /v1/workers`: the workers that sent a heartbeat recently, and each model's capacity and queue. */
  async fleet(options: CallOptions = {}): Promise<FleetView> {
    return (await this.send('GET', '/v1/workers', options)).json() as Promise<FleetView>;
  }

  /** The workers of `fleet()`: each one's model and load. */
  async workers(options: CallOptions = {}): Promise<WorkerView[]> {
    return (await this.fleet(options)).workers;
  }

  /** `GET /healthz`; an unhealthy farm (503) is an answer here, not an error. */
  async health(options: CallOptions = {}): Promise<HealthView> {
    return (await this.send('GET', '/healthz', { ...options, accepted: [503] })).json() as Promise<HealthView>;
  }

  /**
   * `GET /v1/jobs/:id/events` as typed events; ends after the final event. Breaking out of
   * the loop (or aborting the signal) closes the connection.
   */
  async *events(id: string, options: CallOptions = {}): AsyncGenerator<JobEvent, void, undefined> {
    const res = await this.send('GET', `${jobPath(id)}/events`, { ...options, accept: 'text/event-stream' });
    const type = res.headers.get('content-type') ?? '';
    if (!res.body || !type.startsWith('text/event-stream')) {
      await res.body?.cancel().catch(() => undefined);
      throw new FarmApiError(res.status, 'http_error', `expected an event stream from ${res.url || jobPath(id)}, got ${type || 'no body'}`);
    }
    const messages = readServerSentEvents(res.body);
    for (;;) {
      let next: IteratorResult<EventSourceMessage>;
      try {
        next = await messages.next();
      } catch (err) {
        if (isAbortError(err) || options.signal?.aborted) throw err;
        throw new FarmApiError(0, 'network_error', `the event stream of job ${id} broke: ${(err as Error).message}`, undefined, { cause: err });
      }
      if (next.done) return;
      const event = decodeJobEvent(next.value);
      if (!event) continue;
      yield event;
      if (isFinalEvent(event)) {
        await messages.return();
        return;
      }
    }
  }

  /**
   * Follows a job to its final state (succeeded, failed or canceled) and answers its JSON;
   * a failed job is an answer, not an exception. Uses the event stream, then polling.
   */
  async waitFor(id: string, options: WaitOptions = {}): Promise<JobView> {
    const { signal, onProgress, onEvent } = options;
    let lastStep = 0;
    const report = (progress: JobProgress) => {
      if (progress.step <= lastStep) return;
      lastStep = progress.step;
      onProgress?.(progress);
    };
    try {
      for await (const event of this.events(id, { signal })) {
        onEvent?.(event);
        if (event.type === 'progress') report(event.progress);
        else if (isFinalEvent(event)) {
          report(event.job.progress);
          return event.job;
        }
      }
    } catch (err) {
      if (!streamMayBeReplacedByPolling(err, signal)) throw err;
    }
    return this.poll(id, report, options);
  }

  /** Downloads a result (its presigned `url`, or a path on the API) as bytes. */
  async download(url: string, options: CallOptions = {}): Promise<Buffer> {
    const target = new URL(url, `${this.baseUrl}/`);
    // The key is for the API only: a presigned S3 URL must not get a second authorization.
    const headers: Record<string, string> = {};
    if (this.apiKey && target.origin === new URL(this.baseUrl).origin) headers.Authorization = `Bearer ${this.apiKey}`;
    const res = await this.fetchOrThrow(target.href, { headers, signal: options.signal }, options.signal);
    if (!res.ok) throw await FarmApiError.fromResponse(res);
    return Buffer.from(await res.arrayBuffer());
  }

  private async poll(id: string, report: (progress: JobProgress) => void, options: WaitOptions): Promise<JobView> {
    const { signal, pollIntervalMs = 500, maxPollFailures = 5 } = options;
    let failures = 0;
    for (;;) {
      try {
        const job = await this.get(id, { signal });
        failures = 0;
        report(job.progress);
        if (isFinalStatus(job.status)) return job;
      } catch (err) {
        if (!streamMayBeReplacedByPolling(err, signal) || ++failures >= maxPollFailures) throw err;
      }
      await sleep(pollIntervalMs, undefined, { signal });
    }
  }

  private async send(method: string, path: string, options: SendOptions): Promise<Response> {
    const headers: Record<string, string> = { Accept: options.accept ?? 'application/json', ...options.headers };
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    if (this.apiKey) headers.Authorization = `Bearer ${this.apiKey}`;
    const init: RequestInit = { method, headers, signal: options.signal };
    if (options.body !== undefined) init.body = JSON.stringify(options.body);
    const res = await this.fetchOrThrow(`${this.baseUrl}${path}`, init, options.signal);
    if (!res.ok && !options.accepted?.includes(res.status)) throw await FarmApiError.fromResponse(res);
    return res;
  }

  private async fetchOrThrow(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    try {
      return await this.fetchImpl(url, init);
    } catch (err) {
      if (isAbortError(err) || signal?.aborted) throw err;
      throw FarmApiError.unreachable(url, err);
    }
  }
}

function jobPath(id: string): string {
  return `/v1/jobs/${encodeURIComponent(id)}`;
}

/** Connection trouble and server errors are worth polling through; answers like 404 are not. */
function streamMayBeReplacedByPolling(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted || isAbortError(err)) return false;
  if (err instanceof FarmApiError) return err.status === 0 || err.status >= 500 || err.status === 429;
  return true;
}
