/**
 * `npm run bench:sessions`: live sessions through a real farm (the API and one worker process,
 * the bundled model, 256×256, 4 steps), as a WebSocket client sees them:
 *  - stroke latency: a brush stroke covering 5% of the canvas, update → first frame reflecting it,
 *    against a full regeneration of the same canvas (a new seed), timed alternately; p50 of each;
 *  - many sessions: 8 sessions each sending an update (a new 5% stroke) every 200 ms, aggregate
 *    frames/s, against one session doing the same alone;
 *  - an idle session: the worker's UNet calls while it sits open;
 *  - traffic: bytes sent per stroke against a whole frame.
 */
import { Frame, SessionApi, SessionClient, openSession } from '../support/session-client';
import { authed, intArg, sleep, startLocalFarm } from './bench-support';

const SIZE = { width: 256, height: 256 };
/** A 57×57 px square: 5% of the canvas. */
const STROKE_SIDE = 57;
/** Stroke positions: the cells of a 4×4 grid of 64 px. */
const strokeAt = (i: number): [number, number, number, number] => [(i % 4) * 64 + 3, (Math.floor(i / 4) % 4) * 64 + 3, STROKE_SIDE, STROKE_SIDE];

const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const bytesOf = (frame: Frame) => frame.data.reduce((n, d) => n + d.length, 0);

async function open(api: SessionApi, seed: number): Promise<SessionClient> {
  for (;;) {
    const { status, body } = await openSession(api, { prompt: 'a blue background', ...SIZE, steps: 4, seed });
    if (status === 201) {
      const client = await SessionClient.connect(api, body as never, SIZE, {}, false);
      await client.frameFor(0);
      return client;
    }
    if (status !== 503) throw new Error(`POST /v1/sessions answered ${status}: ${JSON.stringify(body)}`);
    await sleep(200); // the worker is still starting
  }
}

/** Sends an update and resolves with the first frame reflecting it and how long it took. */
async function timed(client: SessionClient, update: Record<string, unknown> & { seq: number }): Promise<{ ms: number; frame: Frame }> {
  const from = client.received.length;
  const t0 = performance.now();
  client.send({ type: 'update', ...update });
  const frame = await client.frameFor(update.seq, from);
  return { ms: performance.now() - t0, frame };
}

/** The worker's UNet calls so far (its /metrics). */
async function unetCalls(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('farm_unet_batch_size_count'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const COLOURS = ['a red background', 'a yellow background', 'a green background', 'a white background'];

/**
 * A person painting: each update adds a 5% square stroke, grid cell after grid cell, in one colour
 * per pass over the grid (a new region per pass, over the earlier ones).
 */
function painting(start: number): (seq: number) => Record<string, unknown> {
  const strokes: Array<[number, number, number, number]> = [];
  let pass = 0;
  return (seq) => {
    if (strokes.length === 16) {
      strokes.length = 0;
      pass++;
    }
    strokes.push(strokeAt(start + strokes.length));
    return { type: 'update', seq, regions: { [`pass${pass}`]: { prompt: COLOURS[pass % COLOURS.length], mask: { rects: [...strokes] } } } };
  };
}

/** `clients` each paint a new stroke every `everyMs` for `seconds`; frames received per second, all of them together. */
async function framesPerSecond(clients: SessionClient[], everyMs: number, seconds: number): Promise<number> {
  const marks = clients.map((c) => c.received.length);
  const seqs = clients.map(() => 1000);
  const painters = clients.map((_, i) => painting(3 * i));
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    clients.forEach((c, i) => c.send(painters[i](++seqs[i])));
    await sleep(everyMs);
  }
  // Count what arrived up to the end, once the last updates' frames are in.
  await Promise.all(clients.map((c, i) => c.frameFor(seqs[i], marks[i])));
  const frames = clients.reduce((n, c, i) => n + c.received.slice(marks[i]).filter((m) => m.type === 'frame').length, 0);
  return frames / seconds;
}

async function main(): Promise<void> {
  const reps = intArg('reps', 9);
  const seconds = intArg('seconds', 10);
  const metricsPort = intArg('metrics-port', 19465);
  const farm = await startLocalFarm({ port: intArg('port', 18094), workers: 0 });
  farm.startWorker('bench-sessions', { WORKER_METRICS_PORT: String(metricsPort) });
  const api: SessionApi = { base: farm.base, key: farm.key, fetch: (path, init = {}) => fetch(`${farm.base}${path}`, authed(farm, init)) };
  try {
    console.log(`session benchmark: ${SIZE.width}x${SIZE.height}, 4 steps, bundled model, CPU, one worker process`);

    // 1. Strokes against full regenerations, alternately, on one session.
    const client = await open(api, 1);
    const rects: Array<[number, number, number, number]> = [];
    let seq = 0;
    const strokeMs: number[] = [];
    const regenMs: number[] = [];
    const strokeBytes: number[] = [];
    const wholeBytes: number[] = [];
    for (let i = -1; i < reps; i++) {
      const regen = await timed(client, { seq: ++seq, seed: 100 + i });
      rects.push(strokeAt(rects.length));
      const stroke = await timed(client, { seq: ++seq, regions: { red: { prompt: 'a red background', mask: { rects } } } });
      if (i < 0) continue; // warm-up
      regenMs.push(regen.ms);
      wholeBytes.push(bytesOf(regen.frame));
      strokeMs.push(stroke.ms);
      strokeBytes.push(bytesOf(stroke.frame));
    }
    const stroke = middle(strokeMs);
    const regen = middle(regenMs);
    console.log(
      `  stroke of 5% (update → first frame): p50 ${stroke.toFixed(0)} ms; full regeneration (a new seed): p50 ${regen.toFixed(0)} ms; ` +
        `ratio ${(stroke / regen).toFixed(2)} (target ≤ 0.3), medians of ${reps} alternating pairs`,
    );
    const perStroke = middle(strokeBytes);
    const whole = middle(wholeBytes);
    console.log(`  traffic: ${(perStroke / 1024).toFixed(1)} KiB per stroke vs ${(whole / 1024).toFixed(1)} KiB per whole frame (PNG): ${(perStroke / whole).toFixed(2)}x`);

    // 2. An idle session: no UNet call while it sits open.
    const before = await unetCalls(metricsPort);
    await sleep(3000);
    console.log(`  idle session: ${(await unetCalls(metricsPort)) - before} UNet calls in 3 s open`);
    await client.close();

    // 3. One session updating every 200 ms, then 8 at once.
    const alone = await open(api, 2);
    const one = await framesPerSecond([alone], 200, seconds);
    await alone.close();
    const eight = await Promise.all(Array.from({ length: 8 }, (_, i) => open(api, 10 + i)));
    const many = await framesPerSecond(eight, 200, seconds);
    console.log(
      `  updates every 200 ms for ${seconds} s: one session ${one.toFixed(2)} frames/s; 8 sessions ${many.toFixed(2)} frames/s together: ${(many / one).toFixed(2)}x (target ≥ 3)`,
    );
    await Promise.all(eight.map((c) => c.close()));
  } finally {
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
