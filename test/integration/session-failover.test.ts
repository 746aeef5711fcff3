/**
 * A session's worker dies (a real worker process, SIGKILL): the API replica holding the socket
 * notices it stopped beating, moves the session to the other worker, and the client gets
 * `resumed` and then a whole frame of its latest state — from the last commit when there was
 * one, by generating the state again when there was none. Never a silent hang.
 */
import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { SessionHosts } from '@farm/platform';
import { Harness, QUEUE_PREFIX, TestApi, until, useFarm } from '../support/harness';
import { SessionClient, openSession } from '../support/session-client';

const WORKER_MAIN = path.resolve(__dirname, '../../apps/worker/dist/main.js');
const SIZE = { width: 256, height: 256 };

let farm: Harness;
let api: TestApi;
let doomed: ChildProcess;

useFarm((f, a) => {
  farm = f;
  api = a;
});
afterAll(() => doomed?.kill('SIGKILL'));


it("resumes a dead worker's sessions on another: from the last commit, or generated again", async () => {
  const hosts = new SessionHosts(farm.redis, farm.keyPrefix);
  doomed = fork(WORKER_MAIN, [], {
    env: { ...process.env, QUEUE_NAME: farm.queueName, QUEUE_PREFIX, WORKER_ID: 'doomed', WORKER_METRICS_PORT: '0' },
    stdio: 'pipe',
  });
  await until(() => hosts.isAlive('doomed'));

  // Two sessions on the doomed worker (the only one yet): one commits, one does not.
  const stroke = (seq: number, x: number) => ({ type: 'update', seq, regions: { red: { prompt: 'a red background', mask: { rects: [[x, 64, 64, 64]] } } } });
  const clients: SessionClient[] = [];
  for (const seed of [1, 2]) {
    const { body } = await openSession(api, { prompt: 'a blue background', ...SIZE, steps: 4, seed });
    const client = await SessionClient.connect(api, body as never, SIZE);
    client.send(stroke(1, 32));
    await client.frameFor(1);
    clients.push(client);
  }
  const [committing, uncommitted] = clients;
  committing.send({ type: 'commit' });
  await committing.waitFor((m) => m.type === 'committed');
  committing.send(stroke(2, 128)); // after the commit: the resumed session must still show it
  await committing.frameFor(2);

  await farm.startWorker({ workerId: 'survivor' });
  const marks = clients.map((c) => c.received.length);
  doomed.kill('SIGKILL');

  const [fromCommit, regenerated] = await Promise.all(clients.map((c, i) => c.waitFor((m) => m.type === 'resumed', marks[i])));
  expect(fromCommit).toEqual({ type: 'resumed', from: 'commit' });
  expect(regenerated).toEqual({ type: 'resumed', from: 'regenerated' });
  for (const [i, client] of clients.entries()) {
    const frame = await client.frameFor(i === 0 ? 2 : 1, marks[i]);
    expect(frame.tiles).toEqual([{ x: 0, y: 0, ...{ w: 256, h: 256 } }]);
  }
  // The survivor renders them from now on.
  const after = committing.received.length;
  committing.send(stroke(3, 16));
  expect((await committing.frameFor(3, after)).tiles.length).toBeGreaterThan(0);
  expect(uncommitted.closed).toBeNull();
  await Promise.all(clients.map((c) => c.close()));
});
