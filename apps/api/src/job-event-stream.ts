/**
 * `GET /v1/jobs/:id/events`: a job's life as Server-Sent Events — `queued`, `started`,
 * `progress` ({step, total}), then `succeeded` or `failed` carrying the final job JSON, after
 * which the stream ends; each change of state is sent once. A client that connects late first
 * gets the job's current state; an unknown job is a 404 before the stream starts. While the job
 * is queued, its place in the queue is looked up every second and sent when it changes (`queued`
 * with `{queuePosition}`).
 */
import type { Request, Response } from 'express';
import type { JobStatus, JobView } from '@farm/contracts';
import { HttpError } from './http-errors';
import type { JobEventHub, HubEvent } from './job-event-hub';

export interface JobEventSource {
  hub: JobEventHub;
  /** The job's current JSON, or null when it no longer exists. */
  current(): Promise<JobView | null>;
  /** Marks the job as followed (workers build previews for followed jobs); repeated with the heartbeat. */
  follow(): Promise<void>;
}

const FINAL: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'canceled']);
const HEARTBEAT_MS = 15000;
const POSITION_POLL_MS = 1000;

export async function streamJobEvents(req: Request, res: Response, source: JobEventSource): Promise<void> {
  // Subscribe first, then read the state: nothing can slip between the two. From here on the
  // client may go away at any moment; whenever it does, its subscription and heartbeat go too.
  const pending: HubEvent[] = [];
  let deliver: (e: HubEvent) => void = (e) => pending.push(e);
  const unsubscribe = source.hub.subscribe(req.params.id as string, (e) => deliver(e));
  let heartbeat: NodeJS.Timeout | undefined;
  let positionPoll: NodeJS.Timeout | undefined;
  let closed = false;
  function end() {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    clearInterval(positionPoll);
    unsubscribe();
    if (!res.writableEnded && res.headersSent) res.end();
  }
  res.on('close', end);
  if (req.socket.destroyed) end(); // it went away before this route ran

  let view: JobView | null;
  try {
    [view] = await Promise.all([source.current(), source.follow().catch(() => undefined)]);
  } catch (err) {
    end();
    throw err;
  }
  if (closed) return;
  if (!view) {
    end();
    throw new HttpError(404, 'not_found', `no job with id ${req.params.id}`);
  }
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  heartbeat = setInterval(() => {
    res.write(': keep-alive\n\n');
    source.follow().catch(() => undefined);
  }, HEARTBEAT_MS);
  let seq = 0;
  const send = (event: string, data: unknown) => {
    if (!closed) res.write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const finish = (final: JobView) => {
    send(final.status, final);
    end();
  };

  let lastStep = -1;
  let queued = view.status === 'queued';
  let lastPosition = view.queuePosition;
  const onEvent = async (event: HubEvent) => {
    switch (event.kind) {
      // Each change of state once: the queue's event for the state the stream began with (it
      // came after the subscription, before or after the state was read) is not news.
      case 'active':
        if (!queued) return;
        queued = false;
        return send('started', {});
      case 'waiting':
        if (queued) return;
        queued = true;
        lastPosition = undefined;
        return send('queued', {});
      case 'progress':
        if (event.progress.step <= lastStep) return; // a retry restarts; keep the stream monotonic
        lastStep = event.progress.step;
        return send('progress', event.progress);
      case 'completed':
      case 'failed':
      case 'canceled': {
        const now = await source.current();
        if (now && FINAL.has(now.status)) finish(now);
        return;
      }
    }
  };

  if (FINAL.has(view.status)) return finish(view);
  send(view.status === 'running' ? 'started' : 'queued', view);
  if (view.progress.step > 0) {
    lastStep = view.progress.step;
    send('progress', view.progress);
  }
  // Events are handled one after another, in arrival order.
  let chain = Promise.resolve();
  deliver = (e) => {
    chain = chain.then(() => onEvent(e)).catch(() => end());
  };
  pending.forEach(deliver);
  const checkPosition = async () => {
    if (!queued) return;
    const now = await source.current();
    if (!queued || now?.status !== 'queued' || now.queuePosition === undefined || now.queuePosition === lastPosition) return;
    lastPosition = now.queuePosition;
    send('queued', { queuePosition: now.queuePosition });
  };
  positionPoll = setInterval(() => {
    chain = chain.then(checkPosition).catch(() => end());
  }, POSITION_POLL_MS);
}
