/**
 * `GET /v1/jobs/:id/events` against clients that go away: whenever a client disconnects — right
 * after sending its request, or once its stream is live — its subscription and heartbeat go too.
 * No worker runs, so the job stays queued and only the clients end the streams. And the event hub
 * behind them reads the queues' events only while someone follows, missing none by starting late.
 */
import http from 'node:http';
import { DEFAULT_MODEL, modelQueueName } from '@farm/platform';
import { JobEventHub, HubEvent } from '@farm/api';
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
