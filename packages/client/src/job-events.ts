/**
 * The typed events of `GET /v1/jobs/:id/events`, decoded from raw SSE messages:
 * `queued` / `started` (with the job's JSON when the server had it at hand), `progress`,
 * then exactly one final event carrying the final job JSON, after which the stream ends.
 */
import type { JobProgress, JobStatus, JobView } from '@farm/contracts';
import { FarmApiError } from './farm-api-error';
import type { EventSourceMessage } from './server-sent-events';

export type FinalStatus = Extract<JobStatus, 'succeeded' | 'failed' | 'canceled'>;

export type JobEvent =
  | { type: 'queued' | 'started'; job?: JobView }
  | { type: 'progress'; progress: JobProgress }
  | { type: FinalStatus; job: JobView };

const FINAL_STATUSES: ReadonlySet<string> = new Set<FinalStatus>(['succeeded', 'failed', 'canceled']);

export function isFinalStatus(status: string): status is FinalStatus {
  return FINAL_STATUSES.has(status);
}

export function isFinalEvent(event: JobEvent): event is Extract<JobEvent, { job: JobView; type: FinalStatus }> {
  return isFinalStatus(event.type);
}

/**
 * Decodes one message; null for events this client does not know (newer servers may add
 * some). An `error` event (the job vanished after the stream opened) becomes a FarmApiError.
 */
export function decodeJobEvent(message: EventSourceMessage): JobEvent | null {
  const type = message.event ?? 'message';
  const data = parseData(message.data);
  switch (type) {
    case 'queued':
    case 'started':
      return isJobView(data) ? { type, job: data } : { type };
    case 'progress':
      if (isProgress(data)) return { type, progress: data };
      throw new FarmApiError(0, 'bad_event', `malformed progress event: ${message.data.slice(0, 200)}`);
    case 'succeeded':
    case 'failed':
    case 'canceled':
      if (isJobView(data)) return { type, job: data };
      throw new FarmApiError(0, 'bad_event', `malformed ${type} event: ${message.data.slice(0, 200)}`);
    case 'error': {
      const err = (data as { error?: { code?: string; message?: string } } | null)?.error;
      throw new FarmApiError(404, err?.code ?? 'stream_error', err?.message ?? 'the event stream reported an error');
    }
    default:
      return null;
  }
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

function isJobView(data: unknown): data is JobView {
  return typeof data === 'object' && data !== null && typeof (data as JobView).id === 'string' && typeof (data as JobView).status === 'string';
}

function isProgress(data: unknown): data is JobProgress {
  return typeof data === 'object' && data !== null && typeof (data as JobProgress).step === 'number' && typeof (data as JobProgress).total === 'number';
}
