/**
 * The shared stream batch on the real bundled model (onnxruntime-node): batch invariance,
 * jobs joining mid-flight, packing into as few UNet calls as the maximum batch allows, probes
 * sharing a tick's calls with denoising jobs, a heavy step spread over ticks of a cell budget
 * while another tenant's light job advances every tick.
 */
import {
  CanvasShape,
  GaussianRng,
  SdModel,
  StreamBatch,
  TickReport,
  UNetRunner,
  canvasComposition,
  Scheduler,
  createScheduler,
  tileCanvas,
} from '@farm/pipeline';
import { MODEL_DIR } from '../support/harness';

const canvas: CanvasShape = { channels: 4, height: 16, width: 16 };
let model: SdModel;
let scheduler: Scheduler;
let contexts: Float32Array[];

beforeAll(async () => {
  model = await SdModel.load(MODEL_DIR, { skipEncoder: true });
  scheduler = createScheduler(model.schedulerConfig);
  contexts = (await model.encodeText(['a red circle on a blue background', 'a green square on a white background', ''])).map((t) => t.context);
});
afterAll(() => model.release());

function request(id: string, seed: number, prompt: number, shape = canvas, guidance = false, window = 64) {
  const rng = new GaussianRng(seed);
  const timesteps = scheduler.timesteps(4);
  return {
    id,
    canvas: shape,
    latent: rng.normals(shape.channels * shape.height * shape.width),
    timesteps,
    landings: scheduler.landings(timesteps, 4),
    composition: canvasComposition({
      canvas: shape,
      context: { context: contexts[prompt] },
      guidance: guidance ? { kind: 'cfg', scale: 2.5, unconditional: { context: contexts[2] } } : { kind: 'none' },
      tiles: tileCanvas(shape.height, shape.width, window, 16, 4),
      schedule: scheduler.schedule,
    }),
    rng,
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Records each UNet call's batch size while running the real model. */
function recording(runner: UNetRunner, sizes: number[]): UNetRunner {
  return {
    unet: (sample, timesteps, context, h, w) => {
      sizes.push(timesteps.length);
      return runner.unet(sample, timesteps, context, h, w);
    },
  };
}

describe('StreamBatch', () => {
  it('gives a job the same latent alone or packed with others (batch invariance, |Δ| < 1e-4)', async () => {
    const alone = await new StreamBatch(model, scheduler).add(request('a', 7, 0, canvas, true));
    const packed = new StreamBatch(model, scheduler, { maxBatch: 8 });
    const [together] = await Promise.all([
      packed.add(request('a', 7, 0, canvas, true)),
      packed.add(request('b', 8, 1, canvas, true)),
      packed.add(request('c', 9, 1)),
    ]);
    // Float tolerance: the same sample in a larger GEMM may be summed in another order.
    expect(maxAbsDiff(alone, together)).toBeLessThan(1e-4);
    // …and the packing did change something else: another seed gives another latent.
    const other = await new StreamBatch(model, scheduler).add(request('a', 8, 0, canvas, true));
    expect(maxAbsDiff(alone, other)).toBeGreaterThan(0.1);
  });

  it('lets a job join mid-flight at the next tick and finishes it correctly', async () => {
    const sizes: number[] = [];
    const reports: TickReport[] = [];
    const engine = new StreamBatch(recording(model, sizes), scheduler, { onTick: (r) => reports.push(r) });
    let late: Promise<Float32Array> | null = null;
    const first = engine.add({
      ...request('first', 1, 0),
      onStep: (step) => {
        if (step === 2) late = engine.add(request('late', 2, 1));
      },
    });
    await first;
    const lateLatent = await late!;
    await new Promise((resolve) => setImmediate(resolve)); // the last tick's report
    // Ticks: 2 alone, 2 together, then 2 for the late job alone.
    expect(reports.map((r) => r.jobs)).toEqual([1, 1, 2, 2, 1, 1]);
    expect(sizes).toEqual([1, 1, 2, 2, 1, 1]);
    const reference = await new StreamBatch(model, scheduler).add(request('late', 2, 1));
    expect(maxAbsDiff(lateLatent, reference)).toBeLessThan(1e-4);
  });

  it('packs lanes by shape into as few calls as maxBatch allows', async () => {
    const sizes: number[] = [];
    const engine = new StreamBatch(recording(model, sizes), scheduler, { maxBatch: 4 });
    const wide: CanvasShape = { channels: 4, height: 16, width: 32 };
    await Promise.all([
      engine.add(request('g1', 1, 0, canvas, true)), // 2 lanes 16×16
      engine.add(request('g2', 2, 1, canvas, true)), // 2 lanes 16×16
      engine.add(request('p1', 3, 0)), // 1 lane 16×16
      engine.add(request('w1', 4, 1, wide)), // 1 lane 16×32
    ]);
    // Per tick: 5 lanes of 16×16 → calls of 4 and 1; 1 lane of 16×32 → one call.
    expect(sizes).toEqual(Array(4).fill([4, 1, 1]).flat());
  });

  it('takes a canceled job out of the batch without disturbing the others', async () => {
    const engine = new StreamBatch(model, scheduler);
    const keep = engine.add(request('keep', 5, 0));
    const drop = engine.add({ ...request('drop', 6, 1), onStep: (s) => s === 1 && engine.cancel('drop', 'user canceled') });
    await expect(drop).rejects.toThrow('user canceled');
    const reference = await new StreamBatch(model, scheduler).add(request('keep', 5, 0));
    expect(maxAbsDiff(await keep, reference)).toBeLessThan(1e-4);
    expect(engine.size).toBe(0);
  });

  it('runs a probe inside a tick, sharing its UNet call with a job of the same shape', async () => {
    const sizes: number[] = [];
    const engine = new StreamBatch(recording(model, sizes), scheduler);
    const input = new GaussianRng(3).normals(canvas.channels * canvas.height * canvas.width);
    const window = { x: 0, y: 0, h: canvas.height, w: canvas.width };
    const probe = {
      id: 'probe',
      canvas,
      timestep: 499,
      lanes: [{ window, context: contexts[0] }, { window, context: contexts[1] }],
      inputs: [input, input],
    };
    const [predictions] = await Promise.all([engine.probe(probe), engine.add(request('job', 1, 0))]);
    // Tick 1: the job's lane and the probe's two in one call; then the job alone.
    expect(sizes).toEqual([3, 1, 1, 1]);
    const direct = await model.unet(new Float32Array([...input, ...input]), [499, 499], new Float32Array([...contexts[0], ...contexts[1]]), 16, 16);
    expect(predictions).toHaveLength(2);
    expect(maxAbsDiff(predictions[0], direct.subarray(0, input.length))).toBeLessThan(1e-4);
    expect(maxAbsDiff(predictions[1], direct.subarray(input.length))).toBeLessThan(1e-4);
    expect(maxAbsDiff(predictions[0], predictions[1])).toBeGreaterThan(0.01); // the prompts differ
    expect(engine.size).toBe(0);
  });

  it("spreads a heavy step over ticks within the budget (same latent) while another tenant's light job advances every tick", async () => {
    // Heavy: 4 tiles of 16×16 with guidance, 8 lanes of 256 cells; light: one 8×8 lane.
    const heavy = () => ({ ...request('heavy', 3, 0, { channels: 4, height: 16, width: 48 }, true, 16), tenant: 'h' });
    const reports: TickReport[] = [];
    const engine = new StreamBatch(model, scheduler, { maxBatch: 2, tickBudget: 512, quantumFloor: 64, onTick: (r) => reports.push(r) });
    const heavyDone = engine.add(heavy());
    let lightTicks = 0;
    const light = engine.add({ ...request('light', 4, 1, { channels: 4, height: 8, width: 8 }), tenant: 'l', onStep: () => (lightTicks = reports.length + 1) });
    await light;
    // One step per tick for the light job: it ran in ticks 1-4 (the heavy job's first step is not done yet).
    expect(lightTicks).toBe(4);
    expect(reports.slice(0, 4).every((r) => r.cells <= 64 + 256 && r.deferred > 0)).toBe(true);
    const latent = await heavyDone;
    // Alone (each tick 2 lanes: 4 ticks a step), and every tick within the budget.
    expect(reports.every((r) => r.cells <= 512)).toBe(true);
    const reference = await new StreamBatch(model, scheduler).add(heavy());
    expect(maxAbsDiff(latent, reference)).toBeLessThan(1e-4);
  });
});
