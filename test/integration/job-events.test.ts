/**
 * `GET /v1/jobs/:id/events` against clients that go away: whenever a client disconnects — right
 * after sending its request, or once its stream is live — its subscription and heartbeat go too.
 * No worker runs, so the job stays queued and only the clients end the streams. A job that starts
 * or is queued again as its stream opens is reported so once. And the event hub behind the streams reads the
 * queues' events only while someone follows, missing none by starting late.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UnrecoverableError, Worker } from 'bullmq';
import express from 'express';
import type { JobView } from '@farm/contracts';
import { DEFAULT_MODEL, modelQueueName } from '@farm/platform';
import { JobEventHub, HubEvent } from '@farm/api';
import { streamJobEvents } from '../../apps/api/src/job-event-stream';
import { EventStreamReader } from '../support/event-stream';
import { Harness, QUEUE_PREFIX, postJob, TestApi, useFarm } from '../support/harness';

let farm: Harness;
let api: TestApi;
useFarm((f, a) => {
  farm = f;
  api = a;
});

/** Resolves once `check` holds, polling; rejects after `timeoutMs`. */
async function until(check: () => boolean, timeoutMs = 10000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check(); ) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function follow(id: string): http.ClientRequest {
  return http.get(`${api.base}/v1/jobs/${id}/events`, { headers: { Authorization: `Bearer ${api.key}` } });
}

describe('event streams of clients that disconnect', () => {
  it('drop the subscriptions of live streams whose clients hang up', async () => {
    const { body } = await postJob(api, { type: 'generate', prompt: 'a red circle', width: 64, height: 64 });
    const clients = await Promise.all(
      Array.from({ length: 40 }, () => new Promise<http.ClientRequest>((resolve) => {
        const req = follow(body.id);
        req.on('error', () => undefined);
        req.on('response', (res) => res.once('data', () => resolve(req))); // the "queued" event: the stream is live
      })),
    );
    expect(farm.events.subscriptions).toBe(40);
    for (const req of clients) req.destroy();
    await until(() => farm.events.subscriptions === 0);
  });

  it('drop the subscriptions of clients that hang up right after asking', async () => {
    const { body } = await postJob(api, { type: 'generate', prompt: 'a red circle', width: 64, height: 64 });
    for (let i = 0; i < 40; i++) {
      const req = follow(body.id);
      req.on('error', () => undefined);
      req.on('finish', () => req.destroy()); // the request is sent: hang up before any answer
    }
    // A client that stays shows when the server has handled the others (their requests came first).
    const witness = await new Promise<http.IncomingMessage>((resolve) => follow(body.id).on('response', (res) => res.once('data', () => resolve(res))));
    await until(() => farm.events.subscriptions === 1);
    witness.destroy();
    await until(() => farm.events.subscriptions === 0);
  });
});

describe('event streams of jobs that change state as the stream opens', () => {
  // A farm of its own: its queue holds only the job of the test at hand, which the test's worker takes.
  let own: Harness;
  let ownApi: TestApi;
  let fetcher: Worker;
  const token = randomUUID();
  useFarm((f, a) => {
    own = f;
    ownApi = a;
    fetcher = new Worker(own.queue.name, null, { connection: own.redis, prefix: QUEUE_PREFIX, autorun: false });
  });
  afterAll(() => fetcher.close(true));

  /** The job at the head of the queue, taken as a worker takes it. */
  async function take(id: string) {
    const job = await fetcher.getNextJob(token, { block: false });
    expect(job?.id).toBe(id);
    return job!;
  }

  /**
   * The API's event stream of job `id`, served where `change` runs between its subscription and
   * its first read of the job: the queue's event for the change reaches the stream after the
   * state it read shows it. Resolves with the stream's events once `finish` has ended the job.
   */
  async function streamAcross(id: string, change: () => Promise<void>, finish: (stream: EventStreamReader) => Promise<void>): Promise<string[]> {
    let changed: Promise<void> | undefined;
    const app = express().get('/events/:id', (req, res, next) => {
      streamJobEvents(req, res, {
        hub: own.events,
        current: async () => {
          await (changed ??= change());
          return (await ownApi.fetch(`/v1/jobs/${req.params.id}`)).json() as Promise<JobView>;
        },
        follow: async () => undefined,
      }).catch(next);
    });
    const server = await new Promise<http.Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const stream = await EventStreamReader.open(new TestApi(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, null), `/events/${id}`);
      await finish(stream);
      return (await stream.all()).map((e) => e.event);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  }

  it('report a job started once: the running state read, not again for the queue\'s event after it', async () => {
    const { body } = await postJob(ownApi, { type: 'generate', prompt: 'a red circle', width: 64, height: 64 });
    let job: Awaited<ReturnType<typeof take>>;
    const events = await streamAcross(body.id, async () => void (job = await take(body.id)), async (stream) => {
      expect((await stream.waitFor('started')).data).toMatchObject({ id: body.id, status: 'running' });
      // Its end comes after its `active` event in the queue's events: the stream has relayed that one by then.
      await job.moveToFailed(new UnrecoverableError('stopped by the test'), token);
    });
    expect(events).toEqual(['started', 'failed']);
  });

  it('report a job queued again once: the queued state read, not again for the queue\'s events after it', async () => {
    const { body } = await postJob(ownApi, { type: 'generate', prompt: 'a red circle', width: 64, height: 64 });
    const running = await take(body.id);
    const events = await streamAcross(body.id, () => running.moveToDelayed(Date.now(), token), async (stream) => {
      expect((await stream.waitFor('queued')).data).toMatchObject({ id: body.id, status: 'queued' });
      const again = await take(body.id); // a real change: started, sent
      await stream.waitFor('started');
      await again.moveToFailed(new UnrecoverableError('stopped by the test'), token);
    });
    expect(events).toEqual(['queued', 'started', 'failed']);
  });
});

describe('the event hub', () => {
  it('reads the queues\' events only while someone follows, and misses none of those right after the first subscription', async () => {
    const hub = new JobEventHub([modelQueueName(farm.queueName, DEFAULT_MODEL)], QUEUE_PREFIX, farm.redis, farm.cancellation, 200);
    try {
      expect(hub.reading).toBe(false);
      const seen: HubEvent[] = [];
      const unsubscribe = hub.subscribe('hub-late-start', (e) => seen.push(e));
      expect(hub.reading).toBe(true);
      // Queued in the same turn, before the hub's reader has even connected: its event still arrives.
      await farm.queue.add('generate', {} as never, { jobId: 'hub-late-start' });
      await until(() => seen.some((e) => e.kind === 'waiting'));
      unsubscribe();
      await until(() => !hub.reading);
    } finally {
      await hub.close();
    }
  });
});
