/**
 * `GET /v1/jobs/:id/events`: a job's life as Server-Sent Events — `queued`, `started`,
 * `progress` ({step, total}), then `succeeded` or `failed` carrying the final job JSON, after
 * which the stream ends. A client that connects late first gets the job's current state.
 */
import type { Request, Response } from 'express';
import type { JobStatus, JobView } from '@farm/contracts';
import type { JobEventHub, HubEvent } from './job-event-hub';

export interface JobEventSource {
  hub: JobEventHub;
  /** The job's current JSON, or null when it no longer exists. */
  current(): Promise<JobView | null>;
}

const FINAL: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'canceled']);
const HEARTBEAT_MS = 15000;

export async function streamJobEvents(req: Request, res: Response, source: JobEventSource): Promise<void> {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  let seq = 0;
  let closed = false;
  const send = (event: string, data: unknown) => {
    if (!closed) res.write(`id: ${++seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const finish = (view: JobView) => {
    send(view.status, view);
    end();
  };

  // Subscribe first, then read the state: nothing can slip between the two.
  const pending: HubEvent[] = [];
  let deliver: (e: HubEvent) => void = (e) => pending.push(e);
  const unsubscribe = source.hub.subscribe(req.params.id as string, (e) => deliver(e));
  const heartbeat = setInterval(() => !closed && res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  function end() {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe();
    res.end();
  }
  req.on('close', end);

  let lastStep = -1;
  const onEvent = async (event: HubEvent) => {
    switch (event.kind) {
      case 'active':
        return send('started', {});
      case 'waiting':
        return send('queued', {});
      case 'progress':
        if (event.progress.step <= lastStep) return; // a retry restarts; keep the stream monotonic
        lastStep = event.progress.step;
        return send('progress', event.progress);
      case 'completed':
      case 'failed':
      case 'canceled': {
        const view = await source.current();
        if (view && FINAL.has(view.status)) finish(view);
        return;
      }
    }
  };

  const view = await source.current();
  if (!view) {
    send('error', { error: { code: 'not_found', message: `no job with id ${req.params.id}` } });
    return end();
  }
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
}
