/**
 * `npm run bench:sessions`: live sessions through a real farm (the API and one worker process,
 * the bundled model, 256×256, 4 steps), as a WebSocket client sees them:
 *  - stroke latency: a brush stroke covering 5% of the canvas, update → first frame reflecting it,
 *    against a full regeneration of the same canvas (a new seed), timed alternately; p50 of each;
 *  - many sessions: 8 sessions each sending an update (a new 5% stroke) every 200 ms, aggregate
 *    frames/s, against one session doing the same alone;
 *  - an idle session: the worker's UNet calls while it sits open;
 *  - traffic: bytes sent per stroke against a whole frame;
 *  - where a frame's time goes, one session against 8 (the worker's metrics: UNet calls, their
 *    lanes and time, decoding, tiles, publishing, the share of the canvas denoised), and what the
 *    UNet charges for sharing on this machine: one lane against 8 in a call, on a stroke's window,
 *    timed alternately in this process — the bound on what 8 sessions can get.
 */
import os from 'node:os';
import { DiffusionPipeline, drawnEditMasks, planEdit, rasterizeRects } from '@farm/pipeline';
import { DEFAULT_MODEL_DIR } from '@farm/worker';
import { Frame, SessionApi, SessionClient, openSession } from '../support/session-client';
import { authed, intArg, sleep, startLocalFarm } from './bench-support';

const SIZE = { width: 256, height: 256 };
const STEPS = 4;
/** Sessions painting at once, and how often each sends a stroke. */
const SESSIONS = 8;
const EVERY_MS = 200;
/** A 57×57 px square: 5% of the canvas. */
const STROKE_SIDE = 57;
/** Stroke positions: the cells of a 4×4 grid of 64 px. */
const strokeAt = (i: number): [number, number, number, number] => [(i % 4) * 64 + 3, (Math.floor(i / 4) % 4) * 64 + 3, STROKE_SIDE, STROKE_SIDE];

const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const bytesOf = (frame: Frame) => frame.data.reduce((n, d) => n + d.length, 0);

async function open(api: SessionApi, seed: number): Promise<SessionClient> {
  for (;;) {
    const { status, body } = await openSession(api, { prompt: 'a blue background', ...SIZE, steps: STEPS, seed });
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

/** A reading of the worker's /metrics: a sample's value summed over the series that carry `labels`. */
type Metrics = (name: string, labels?: Record<string, string>) => number;

async function scrape(metricsPort: number): Promise<Metrics> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const samples = [...text.matchAll(/^(\w+)(?:\{(.*)\})? (\S+)$/gm)].map(([, name, labels = '', value]) => ({
    name,
    labels: Object.fromEntries([...labels.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v])),
    value: Number(value),
  }));
  return (name, labels = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

/** The worker's mean time per frame of `kind` (edit, full) between two readings, by phase, and the frames' count. */
function phaseTimes(before: Metrics, after: Metrics, kind: string): { frames: number; text: string } {
  const delta = (name: string, phase: string) => after(name, { kind, phase }) - before(name, { kind, phase });
  const frames = delta('farm_session_frame_seconds_count', 'render');
  const ms = (phase: string) => `${((delta('farm_session_frame_seconds_sum', phase) * 1000) / frames).toFixed(0)} ms`;
  return { frames, text: `render ${ms('render')}${kind === 'edit' ? `, tiles ${ms('encode')}` : ''}, publish ${ms('publish')}` };
}

/** Where the stroke frames rendered between two readings spent their time, per frame. */
function frameBreakdown(before: Metrics, after: Metrics): string {
  const delta = (name: string, labels?: Record<string, string>) => after(name, labels) - before(name, labels);
  const edit = { kind: 'edit' };
  const { frames, text } = phaseTimes(before, after, 'edit');
  if (frames === 0) return 'no stroke frames';
  const ms = (seconds: number) => `${((seconds * 1000) / frames).toFixed(0)} ms`;
  const calls = delta('farm_unet_batch_size_count');
  return (
    `UNet ${ms(delta('farm_model_call_seconds_total', { part: 'unet' }))} in ${(calls / frames).toFixed(1)} calls of ${(delta('farm_unet_batch_size_sum') / calls).toFixed(1)} lanes, ` +
    `decode ${ms(delta('farm_model_call_seconds_total', { part: 'vae_decoder' }))}; ${text}; ` +
    `${((100 * delta('farm_session_frame_recomputed_ratio_sum', edit)) / frames).toFixed(0)}% of the canvas denoised, ` +
    `${(1 + delta('farm_session_updates_superseded_total') / frames).toFixed(1)} updates per frame (${frames} frames)`
  );
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

/**
 * `clients` each paint a new stroke every EVERY_MS for `seconds`: frames received per second, all
 * of them together, and where the worker's time went per frame.
 */
async function painted(clients: SessionClient[], seconds: number, metricsPort: number): Promise<{ fps: number; breakdown: string }> {
  const metrics = await scrape(metricsPort);
  const marks = clients.map((c) => c.received.length);
  const seqs = clients.map(() => 1000);
  const painters = clients.map((_, i) => painting(3 * i));
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    clients.forEach((c, i) => c.send(painters[i](++seqs[i])));
    await sleep(EVERY_MS);
  }
  // Count what arrived up to the end, once the last updates' frames are in.
  await Promise.all(clients.map((c, i) => c.frameFor(seqs[i], marks[i])));
  const frames = clients.reduce((n, c, i) => n + c.received.slice(marks[i]).filter((m) => m.type === 'frame').length, 0);
  return { fps: frames / seconds, breakdown: frameBreakdown(metrics, await scrape(metricsPort)) };
}

/** Copies of a lane's row, one per lane of a batch. */
const rows = (row: Float32Array, batch: number) => {
  const out = new Float32Array(batch * row.length);
  for (let i = 0; i < batch; i++) out.set(row, i * row.length);
  return out;
};

/**
 * What the UNet charges for sharing on this machine: on a stroke's window as the pipeline plans
 * it, one lane alone against 8 in one call, timed alternately in this process (ms, medians); and
 * a decode of the stroke's decode window.
 */
async function strokeModelCosts(reps: number) {
  const pipeline = await DiffusionPipeline.load(DEFAULT_MODEL_DIR);
  try {
    const canvas = pipeline.latentCanvas(SIZE.width, SIZE.height);
    const { core } = drawnEditMasks([rasterizeRects([strokeAt(5)], SIZE.width, SIZE.height)], canvas, pipeline.layout.vaeScale);
    const { windows, decodeWindows } = planEdit(core, [], canvas, pipeline.layout)!;
    const [{ h, w }] = windows;
    const [decoded] = decodeWindows;
    const [text] = await pipeline.textCache.get(['a red background']);
    const { context, extras = {} } = pipeline.model.conditioning(text, { ...SIZE, guidanceScale: 1 });
    const unet = (b: number) =>
      pipeline.model.unet(new Float32Array(b * canvas.channels * h * w), Array(b).fill(499), rows(context, b), h, w, Object.fromEntries(Object.entries(extras).map(([k, v]) => [k, rows(v, b)])));
    const decode = () => pipeline.model.decode(new Float32Array(canvas.channels * decoded.h * decoded.w), 1, decoded.h, decoded.w);
    const ms = async (call: () => Promise<unknown>) => {
      const t0 = performance.now();
      await call();
      return performance.now() - t0;
    };
    const times = { one: [] as number[], eight: [] as number[], decode: [] as number[] };
    for (let i = -1; i < reps; i++) {
      const round = { one: await ms(() => unet(1)), eight: await ms(() => unet(SESSIONS)), decode: await ms(decode) };
      if (i >= 0) for (const k of ['one', 'eight', 'decode'] as const) times[k].push(round[k]);
    }
    return { window: `${h}x${w}`, decodeWindow: `${decoded.h}x${decoded.w}`, one: middle(times.one), eight: middle(times.eight), decode: middle(times.decode) };
  } finally {
    await pipeline.close();
  }
}

async function main(): Promise<void> {
  const reps = intArg('reps', 9);
  const seconds = intArg('seconds', 10);
  const metricsPort = intArg('metrics-port', 19465);
  const farm = await startLocalFarm({ port: intArg('port', 18094), workers: 0 });
  farm.startWorker('bench-sessions', { WORKER_METRICS_PORT: String(metricsPort) });
  const api: SessionApi = { base: farm.base, key: farm.key, fetch: (path, init = {}) => fetch(`${farm.base}${path}`, authed(farm, init)) };
  try {
    const load = () => os.loadavg()[0].toFixed(1);
    console.log(`session benchmark: ${SIZE.width}x${SIZE.height}, ${STEPS} steps, bundled model, CPU (${os.cpus().length} cores, load average ${load()}), one worker process`);

    // 1. Strokes against full regenerations, alternately, on one session.
    const client = await open(api, 1);
    const metricsBefore = await scrape(metricsPort);
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
    // The worker's part of each (the rest: the API, Redis, the socket, the processes' turns on the CPU).
    const metricsAfter = await scrape(metricsPort);
    console.log(
      `    on the worker, mean per frame: stroke ${phaseTimes(metricsBefore, metricsAfter, 'edit').text}; regeneration ${phaseTimes(metricsBefore, metricsAfter, 'full').text}`,
    );
    const perStroke = middle(strokeBytes);
    const whole = middle(wholeBytes);
    console.log(`  traffic: ${(perStroke / 1024).toFixed(1)} KiB per stroke vs ${(whole / 1024).toFixed(1)} KiB per whole frame (PNG): ${(perStroke / whole).toFixed(2)}x`);

    // 2. An idle session: no UNet call while it sits open.
    const unetCalls = async () => (await scrape(metricsPort))('farm_unet_batch_size_count');
    const before = await unetCalls();
    await sleep(3000);
    console.log(`  idle session: ${(await unetCalls()) - before} UNet calls in 3 s open`);
    await client.close();

    // 3. One session sending a stroke every 200 ms, then 8 at once.
    const alone = await open(api, 2);
    const one = await painted([alone], seconds, metricsPort);
    await alone.close();
    const eight = await Promise.all(Array.from({ length: SESSIONS }, (_, i) => open(api, 10 + i)));
    const many = await painted(eight, seconds, metricsPort);
    await Promise.all(eight.map((c) => c.close()));
    console.log(
      `  a stroke every ${EVERY_MS} ms for ${seconds} s: one session ${one.fps.toFixed(2)} frames/s; ${SESSIONS} sessions ${many.fps.toFixed(2)} frames/s together: ` +
        `${(many.fps / one.fps).toFixed(2)}x (target ≥ 3)`,
    );
    console.log(`    per frame, one session: ${one.breakdown}`);
    console.log(`    per frame, ${SESSIONS} sessions: ${many.breakdown}`);

    // 4. The bound: model calls run one at a time on the worker (on its model thread, in the
    //    order they were made), so a stroke frame costs at least its steps' share of batch-8 UNet calls and
    //    its decode, however well the sessions share the ticks.
    const cost = await strokeModelCosts(reps);
    const frameMs = (STEPS * cost.eight) / SESSIONS + cost.decode;
    const ceiling = 1000 / frameMs;
    console.log(
      `  bound on this machine: the UNet on a stroke's ${cost.window}-cell window takes ${cost.one.toFixed(1)} ms for 1 lane, ${cost.eight.toFixed(1)} ms for ${SESSIONS} ` +
        `in one call (${(cost.eight / cost.one).toFixed(2)}x one lane: sharing a call saves ${(100 * (1 - cost.eight / (SESSIONS * cost.one))).toFixed(0)}% per lane); ` +
        `with its ${cost.decodeWindow} decode (${cost.decode.toFixed(1)} ms) a stroke frame needs ≥ ${frameMs.toFixed(0)} ms of model time, so ≤ ${ceiling.toFixed(1)} stroke frames/s ` +
        `(${(ceiling / one.fps).toFixed(2)}x one session's) against the ${((SESSIONS * 1000) / EVERY_MS).toFixed(0)} strokes/s the sessions send — ` +
        `beyond that their updates coalesce and frames grow; medians of ${reps} alternating rounds, load average ${load()}`,
    );
  } finally {
    await farm.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
