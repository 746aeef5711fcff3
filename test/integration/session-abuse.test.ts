/**
 * Live sessions against bad input and misbehaving clients, through the real farm: malformed
 * and oversized messages and masks get an error message and leave the session working; a flood
 * of updates is coalesced; a client that never reads has its frames dropped while another
 * session keeps getting its own, and gets a whole frame once it reads again; a token opens only
 * its own session.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pngDeclaring } from '../support/png-bomb';
import { ADMIN_KEY, TestApi, until, useFarm } from '../support/harness';
import { Frame, Received, SessionClient, openSession } from '../support/session-client';

let api: TestApi;

const MAX_MESSAGE = 64 * 1024;
useFarm(
  async (f, a) => {
    api = a;
    await f.startWorker();
  },
  { sessionMaxMessageBytes: MAX_MESSAGE, sessionMaxBufferedBytes: 64 * 1024 },
);

const SIZE = { width: 256, height: 256 };
const OPEN = { prompt: 'a blue background', ...SIZE, steps: 4, seed: 3 };
const STALLED_CLIENT = path.resolve(__dirname, '../support/stalled_ws_client.py');


const isError = (code: string) => (m: Received): m is Extract<Received, { type: 'error' }> => m.type === 'error' && m.code === code;

/** A counter (summed over labels) of the API's metrics, from GET /metrics. */
async function apiMetric(name: string, labels = ''): Promise<number> {
  const text = await (await api.as(ADMIN_KEY).fetch(`/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name) && line.includes(labels) && !line.startsWith(`${name}_`))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

async function connected(size = SIZE, body: Record<string, unknown> = {}): Promise<SessionClient> {
  const { body: session } = await openSession(api, { ...OPEN, ...size, ...body });
  const client = await SessionClient.connect(api, session as never, size);
  await client.frameFor(0);
  return client;
}

describe('bad messages', () => {
  let client: SessionClient;
  beforeAll(async () => (client = await connected()));
  afterAll(() => client.close());

  it('each get an error message naming the problem, and the session keeps working', async () => {
    client.send('{"type": "update", ');
    await client.waitFor(isError('invalid_json'));
    client.send({ type: 'update', seq: 'one', brush: 3 });
    const invalid = await client.waitFor(isError('invalid_message'));
    expect(invalid.fields!.map((f) => f.path).sort()).toEqual(['brush', 'seq']);
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    await client.waitFor((m) => m.type === 'error' && m.code === 'invalid_message' && /binary/.test(m.message));
    client.send({ type: 'update', seq: 1, prompt: 'x'.repeat(MAX_MESSAGE) });
    await client.waitFor(isError('message_too_large'));
    client.send({ type: 'update', seq: 1, regions: { red: { prompt: 'a red background', mask: { png: pngDeclaring(30000, 30000) } } } });
    const bomb = await client.waitFor(isError('invalid_update'));
    expect(bomb).toMatchObject({ seq: 1, fields: [{ path: 'regions.red.mask.png', message: expect.stringMatching(/more than .* pixels/) }] });

    // None of it changed the state: the next update renders, and seq 1 is still free.
    const from = client.received.length;
    client.send({ type: 'update', seq: 1, regions: { red: { prompt: 'a red background', mask: { rects: [[64, 64, 64, 64]] } } } });
    const frame = await client.frameFor(1, from);
    expect(frame.tiles.length).toBeGreaterThan(0);
    client.send({ type: 'update', seq: 1, prompt: 'a green background' });
    await client.waitFor(isError('stale_seq'), from);
  });

  it('oversized masks are refused before a session opens too', async () => {
    const res = await openSession(api, { ...OPEN, regions: { red: { prompt: 'a red background', mask: { png: pngDeclaring(30000, 30000) } } } });
    expect(res.status).toBe(400);
    expect(res.body.error.fields).toEqual([{ path: 'regions.red.mask.png', message: expect.stringMatching(/more than/) }]);
  });

  it("a token opens only the session it came with", async () => {
    const { body: mine } = await openSession(api, OPEN);
    const { body: other } = await openSession(api, OPEN);
    await expect(SessionClient.connect(api, other as never, SIZE, { token: mine.token, key: null })).rejects.toThrow('401');
  });
});

describe('a flood of updates', () => {
  it('is coalesced: the frames go straight to the newest state, in order', async () => {
    const client = await connected();
    const coalescedBefore = await apiMetric('farm_session_updates_total', 'outcome="coalesced"');
    const from = client.received.length;
    for (let seq = 1; seq <= 40; seq++) {
      client.send({ type: 'update', seq, regions: { red: { prompt: 'a red background', mask: { rects: [[4 * seq, 4 * seq, 48, 48]] } } } });
    }
    await client.frameFor(40, from);
    const frames = client.received.slice(from).filter((m): m is Frame => m.type === 'frame');
    expect(frames.length).toBeLessThan(10);
    const basedOn = frames.map((f) => f.basedOn);
    expect(basedOn).toEqual([...basedOn].sort((a, b) => a - b));
    expect(new Set(basedOn).size).toBe(basedOn.length);
    expect(await apiMetric('farm_session_updates_total', 'outcome="coalesced"')).toBeGreaterThan(coalescedBefore);
    await client.close();
  });
});

describe('a client that never reads', () => {
  it('has its frames dropped while another session keeps getting its own, and frames again once it reads', async () => {
    const { body: session } = await openSession(api, { ...OPEN, width: 512, height: 512 });
    const { hostname, port } = new URL(api.base);
    const stalled = spawn('python3', [STALLED_CLIENT, hostname, port, `${session.links.ws}?token=${session.token}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: Array<Record<string, any>> = [];
    createInterface({ input: stalled.stdout! }).on('line', (line) => lines.push(JSON.parse(line)));
    const sendVia = (message: unknown) => stalled.stdin!.write(`send ${JSON.stringify(message)}\n`);
    try {
      await until(async () => lines.some((l) => l.open?.includes('101')));
      const other = await connected();
      // Ask for whole frames until the client's buffers are full and the API drops them.
      const dropped = await apiMetric('farm_session_frames_dropped_total');
      for (let round = 0; (await apiMetric('farm_session_frames_dropped_total')) === dropped; round++) {
        if (round === 100) throw new Error('no frame was dropped');
        for (let i = 0; i < 20; i++) {
          sendVia({ type: 'keyframe' });
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      // Meanwhile the other session renders as usual.
      const from = other.received.length;
      other.send({ type: 'update', seq: 1, regions: { red: { prompt: 'a red background', mask: { rects: [[32, 32, 64, 64]] } } } });
      expect((await other.frameFor(1, from)).tiles.length).toBeGreaterThan(0);
      await other.close();

      // Reading again, it gets what was sent before the drops, then frames for its updates.
      stalled.stdin!.write('read\n');
      sendVia({ type: 'update', seq: 1, regions: { red: { prompt: 'a red background', mask: { rects: [[64, 64, 96, 96]] } } } });
      await until(async () => lines.some((l) => l.type === 'frame' && l.basedOn === 1));
      const frames = lines.filter((l) => l.type === 'frame');
      expect(frames.map((f) => f.seq)).toEqual(frames.map((_, i) => i + 1)); // numbered as sent: none half-sent
    } finally {
      stalled.kill();
    }
  });
});
