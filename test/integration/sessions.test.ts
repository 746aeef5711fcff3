/**
 * Live canvas sessions through the real farm (API, WebSocket, Redis streams, an in-process
 * worker on the bundled model, S3): the first frame is whole, a brush stroke sends only the
 * tiles it changed, an unchanged state costs no UNet call, a commit is an ordinary job that edits
 * can start from; the socket is the tenant's alone.
 */
import sharp from 'sharp';
import type { FarmWorker } from '@farm/worker';
import { Harness, TestApi, download, postJob, until, useFarm, waitForJob } from '../support/harness';
import { decodeRgb } from '../support/colour-judge';
import { Frame, SessionClient, openSession } from '../support/session-client';

let farm: Harness;
let api: TestApi;
let worker: FarmWorker;

useFarm(async (f, a) => {
  farm = f;
  api = a;
  worker = await f.startWorker();
});

const SIZE = { width: 256, height: 256 };
const OPEN = { prompt: 'a blue background', ...SIZE, steps: 4, seed: 7 };
/** A 56×56 stroke: 5% of the canvas. */
const STROKE = [96, 96, 56, 56] as const;

/** A counter or histogram count of the worker's metrics. */
async function metric(w: FarmWorker, name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await w.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (found?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
  return values
    .filter((v) => (v.metricName ?? name) === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l))
    .reduce((sum, v) => sum + v.value, 0);
}


/** Pixels (x, y) where two RGB images differ. */
function differing(a: Buffer, b: Buffer, width: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < a.length; i += 3) {
    if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) out.push([(i / 3) % width, Math.floor(i / 3 / width)]);
  }
  return out;
}

describe('a live session', () => {
  let session: Record<string, any>;
  let client: SessionClient;
  let first: Frame;

  beforeAll(async () => {
    const opened = await openSession(api, OPEN);
    expect(opened.status).toBe(201);
    session = opened.body;
    client = await SessionClient.connect(api, session as never, SIZE);
    first = await client.frameFor(0);
  });
  afterAll(() => client.close());

  it('answers 201 with the socket path and a token, and sends a whole first frame after progress previews', async () => {
    expect(session).toMatchObject({ id: expect.any(String), token: expect.any(String), links: { ws: `/v1/sessions/${session.id}/ws` } });
    expect(first).toMatchObject({ basedOn: 0, format: 'png', tiles: [{ x: 0, y: 0, ...{ w: 256, h: 256 } }] });
    const image = await decodeRgb(first.data[0]);
    expect([image.width, image.height]).toEqual([256, 256]);
    const previews = client.received.slice(0, client.received.indexOf(first)).filter((m) => m.type === 'progress');
    expect(previews.map((p) => p.type === 'progress' && [p.basedOn, p.step, p.total])).toEqual([[0, 1, 4], [0, 2, 4], [0, 3, 4]]);
    expect(previews.every((p) => p.type === 'progress' && p.preview.startsWith('data:image/png;base64,'))).toBe(true);
  });

  it('renders a stroke by sending only the tiles it changed, all around the stroke', async () => {
    const before = Buffer.from(client.image!);
    const from = client.received.length;
    client.send({ type: 'update', seq: 1, regions: { red: { prompt: 'a red background', mask: { rects: [STROKE] } } } });
    const frame = await client.frameFor(1, from);
    expect(frame.basedOn).toBe(1);
    expect(frame.tiles.length).toBeGreaterThan(0);
    // Tiles cover the stroke plus the 8 px feather, on a 32 px grid: nothing beyond.
    const [sx, sy, sw, sh] = STROKE;
    for (const t of frame.tiles) {
      expect(t.x + t.w).toBeGreaterThan(sx - 9);
      expect(t.x).toBeLessThan(sx + sw + 9);
      expect(t.y + t.h).toBeGreaterThan(sy - 9);
      expect(t.y).toBeLessThan(sy + sh + 9);
    }
    const changed = differing(before, client.image!, 256);
    expect(changed.length).toBeGreaterThan(1000);
    expect(changed.every(([x, y]) => x >= sx - 9 && x < sx + sw + 9 && y >= sy - 9 && y < sy + sh + 9)).toBe(true);
  });

  it('costs nothing for an unchanged state: no UNet call, no frame', async () => {
    const calls = await metric(worker, 'farm_unet_batch_size_count');
    const idle = await metric(worker, 'farm_session_renders_total', { kind: 'none' });
    const from = client.received.length;
    client.send({ type: 'update', seq: 2, regions: { red: { prompt: 'a red background', mask: { rects: [STROKE] } } } });
    await until(async () => (await metric(worker, 'farm_session_renders_total', { kind: 'none' })) > idle);
    expect(await metric(worker, 'farm_unet_batch_size_count')).toBe(calls);
    // The next frame is for a later change; none was sent for the unchanged state.
    client.send({ type: 'update', seq: 3, regions: { red: null } });
    const next = await client.frameFor(2, from);
    expect(next.basedOn).toBe(3);
  });

  it('commits the frame as an ordinary job: found by id, listed, downloadable, editable', async () => {
    const from = client.received.length;
    client.send({ type: 'commit' });
    const committed = await client.waitFor((m) => m.type === 'committed', from);
    if (committed.type !== 'committed') throw new Error('unreachable');
    expect(committed.basedOn).toBe(3);
    const job = await waitForJob(api, committed.job.id);
    expect(job).toMatchObject({ status: 'succeeded', type: 'generate', request: { prompt: 'a blue background', width: 256, height: 256 } });
    const listed = (await (await api.fetch('/v1/jobs?limit=100')).json()) as { jobs: Array<{ id: string }> };
    expect(listed.jobs.map((j) => j.id)).toContain(committed.job.id);
    const stored = await decodeRgb(await download(job.result.url));
    expect(stored.data.equals(client.image!)).toBe(true);
    const edit = await postJob(api, { type: 'edit', source: committed.job.id, prompt: 'a yellow background', mask: { rects: [[16, 16, 64, 64]] }, steps: 4 });
    expect(edit.status).toBe(202);
    expect(await waitForJob(api, edit.body.id)).toMatchObject({ status: 'succeeded', result: { source: 'memory' } });
  });
});

describe('session sockets', () => {
  it('open with the single-use token from the session, once', async () => {
    const { body } = await openSession(api, OPEN);
    const client = await SessionClient.connect(api, body as never, SIZE, { token: body.token, key: null });
    await client.frameFor(0);
    await client.close();
    await expect(SessionClient.connect(api, body as never, SIZE, { token: body.token, key: null })).rejects.toThrow('401');
  });

  it("refuse another tenant's session as if it did not exist, and a key-less upgrade", async () => {
    const { body } = await openSession(api, OPEN);
    const other = await farm.tenant(api, 'tenant-b');
    await expect(SessionClient.connect(other, body as never, SIZE)).rejects.toThrow('404');
    await expect(SessionClient.connect(api, body as never, SIZE, { key: null })).rejects.toThrow('401');
    const mine = await SessionClient.connect(api, body as never, SIZE);
    await mine.frameFor(0);
    await mine.close();
  });

  it('refuse a bad session request with 400 naming the field', async () => {
    const bad = await openSession(api, { ...OPEN, width: 100, regions: { '12': { prompt: 'x', mask: { rects: [[0, 0, 8, 8]] } } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((f: { path: string }) => f.path).sort()).toEqual(['regions.12', 'width']);
  });
});

describe('session sizes', () => {
  it('serve the first frame as WebP when asked', async () => {
    const { body } = await openSession(api, { ...OPEN, format: 'webp', width: 128, height: 64 });
    const client = await SessionClient.connect(api, body as never, { width: 128, height: 64 });
    const frame = await client.frameFor(0);
    expect((await sharp(frame.data[0]).metadata()).format).toBe('webp');
    await client.close();
  });
});
