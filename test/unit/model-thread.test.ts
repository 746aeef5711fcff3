/**
 * The model on its own thread (model-thread.ts), on the real bundled model: a model call leaves
 * the caller's event loop free, calls give the same results as before (one per call, in order),
 * onnxruntime's failures reach the caller as plain errors (the runner's InferenceError, as
 * before), a released model refuses calls with ModelThreadError, and the busy meter counts the
 * time the thread ran calls, overlapping ones once. The thread's nice value is its own (and its
 * onnxruntime threads'), read back from /proc; a priority the process may not raise is reported,
 * and the model loads and runs at normal priority.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { BusyMeter, ModelThreadError, SdModel } from '@farm/pipeline';
import { MODEL_DIR } from '../support/harness';

/** This process's threads' nice values, by thread id (Linux /proc). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the command's closing parenthesis: state is the 3rd field, nice the 19th.
    nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nices;
}

describe('a model on its own thread', () => {
  let model: SdModel;
  const busy = new BusyMeter();
  let context: Float32Array;

  beforeAll(async () => {
    model = await SdModel.load(MODEL_DIR, { skipEncoder: true, busy });
    [{ context }] = await model.encodeText(['a red circle']);
  });
  afterAll(() => model.release());

  const rows = (b: number) => {
    const out = new Float32Array(b * context.length);
    for (let i = 0; i < b; i++) out.set(context, i * context.length);
    return out;
  };

  it('leaves the event loop free while a UNet call runs', async () => {
    const sample = new Float32Array(8 * 4 * 32 * 32).fill(0.5);
    let loopRan = false;
    setImmediate(() => (loopRan = true));
    const call = model.unet(sample, Array(8).fill(500), rows(8), 32, 32).then(() => loopRan);
    expect(await call).toBe(true);
  });

  it('answers concurrent calls each with its own result, as calls one after another do', async () => {
    const samples = [0.1, -0.3, 0.7].map((v) => new Float32Array(4 * 16 * 16).fill(v));
    const alone: Float32Array[] = [];
    for (const s of samples) alone.push(await model.unet(s, [700], rows(1), 16, 16));
    const together = await Promise.all(samples.map((s) => model.unet(s, [700], rows(1), 16, 16)));
    together.forEach((out, i) => expect(out).toEqual(alone[i]));
    // The caller's arrays are its own still (inputs are copied to the thread, not moved).
    expect(samples[0][0]).toBeCloseTo(0.1);
  });

  it("rejects a call onnxruntime fails with onnxruntime's message, and keeps serving", async () => {
    const wrong = model.unet(new Float32Array(4 * 16 * 16), [500], new Float32Array(7), 16, 16);
    await expect(wrong).rejects.toThrow(Error);
    await expect(wrong).rejects.not.toBeInstanceOf(ModelThreadError);
    const out = await model.decode(new Float32Array(4 * 8 * 8), 1, 8, 8);
    expect(out.length).toBe(3 * 8 * model.info.vaeScale * 8 * model.info.vaeScale);
  });

  it('counts the time the thread ran calls as busy, by part', async () => {
    const before = busy.busyMs();
    const unetBefore = busy.partMs().get('unet') ?? 0;
    const t0 = performance.now();
    await Promise.all([0, 1, 2].map(() => model.unet(new Float32Array(4 * 32 * 32), [300], rows(1), 32, 32)));
    const wall = performance.now() - t0;
    const busyMs = busy.busyMs() - before;
    expect(busyMs).toBeGreaterThan(0);
    expect(busyMs).toBeLessThanOrEqual(wall);
    expect((busy.partMs().get('unet') ?? 0) - unetBefore).toBeCloseTo(busyMs, 0);
  });

  it('refuses calls once released', async () => {
    const other = await SdModel.load(MODEL_DIR, { skipEncoder: true });
    await other.release();
    await expect(other.decode(new Float32Array(4 * 8 * 8), 1, 8, 8)).rejects.toBeInstanceOf(ModelThreadError);
  });
});

describe("the model thread's priority", () => {
  it('is set on the model thread and the threads onnxruntime starts on it, not on the caller', async () => {
    const before = threadNices();
    const model = await SdModel.load(MODEL_DIR, { skipEncoder: true, threads: 2, threadNice: 7 });
    try {
      expect(model.threadPriority).toEqual({ nice: 7, applied: true });
      await model.decode(new Float32Array(4 * 8 * 8), 1, 8, 8);
      const after = threadNices();
      const niced = [...after].filter(([tid, nice]) => nice === 7 && !before.has(tid));
      // The model thread and (2 intra-op threads) at least one pool thread of each session.
      expect(niced.length).toBeGreaterThanOrEqual(2);
      expect(after.get(process.pid)).toBe(before.get(process.pid));
      expect([...before].filter(([, nice]) => nice === 7)).toEqual([]);
    } finally {
      await model.release();
    }
  });

  it('says why when the process may not raise it, and the model loads and runs anyway', () => {
    // As root, without CAP_SYS_NICE (setpriv drops it); otherwise as this user, who has no RLIMIT_NICE here.
    const program = `
      const { SdModel } = require(${JSON.stringify(path.resolve(__dirname, '../../packages/pipeline/dist/index.js'))});
      SdModel.load(${JSON.stringify(MODEL_DIR)}, { skipEncoder: true, threadNice: -5 }).then(async (model) => {
        const out = await model.decode(new Float32Array(4 * 8 * 8), 1, 8, 8);
        console.log(JSON.stringify({ priority: model.threadPriority, decoded: out.length }));
        await model.release();
      });`;
    const asRoot = process.getuid?.() === 0;
    const child = asRoot
      ? spawnSync('setpriv', ['--bounding-set=-sys_nice', process.execPath, '-e', program], { encoding: 'utf8' })
      : spawnSync(process.execPath, ['-e', program], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    const { priority, decoded } = JSON.parse(child.stdout);
    expect(priority).toEqual({ nice: -5, applied: false, reason: expect.stringMatching(/EACCES|EPERM/) });
    expect(decoded).toBeGreaterThan(0);
  });
});

describe('the busy meter', () => {
  it('counts overlapping calls once and each part whole', () => {
    const busy = new BusyMeter();
    busy.record('unet', 0, 10);
    busy.record('vae_decoder', 5, 12);
    busy.record('unet', 20, 25);
    expect(busy.busyMs()).toBe(17);
    expect(Object.fromEntries(busy.partMs())).toEqual({ unet: 15, vae_decoder: 7 });
  });
});
