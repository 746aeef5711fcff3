/**
 * The model thread's program (node:worker_threads): it owns the ONNX sessions and runs them, so
 * that onnxruntime-node — whose `run` computes on the calling thread — never holds the worker's
 * event loop. It answers model-thread.ts's requests one message each: open a session (its
 * inputs' and outputs' metadata back), run one (its outputs back as float32, their buffers
 * transferred, with when the run started and ended), release one, set its own nice value.
 * Inputs arrive as float or integer values with the element type the session wants; the
 * conversion (float16, int64) is done here, off the worker's thread.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ElementType, fromFloat16, toFloat16 } from '@farm/model-tools';
import type { Feed, SessionMetadata, ThreadReply, ThreadRequest, TimedOutputs } from './model-thread';

const sessions = new Map<number, ort.InferenceSession>();
/** Milliseconds since the epoch: comparable across threads, whose `performance.now()` origins differ. */
const now = () => performance.timeOrigin + performance.now();

function tensor({ type, values, dims }: Feed): ort.Tensor {
  switch (type) {
    case 'float32':
      return new ort.Tensor('float32', values instanceof Float32Array ? values : Float32Array.from(values), dims);
    case 'float16':
      return new ort.Tensor('float16', toFloat16(values instanceof Float32Array ? values : Float32Array.from(values)), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(values, Math.trunc), dims);
  }
}

function metadata(session: ort.InferenceSession): SessionMetadata {
  const values = (list: readonly ort.InferenceSession.ValueMetadata[]) =>
    list.filter((m): m is ort.InferenceSession.TensorValueMetadata => m.isTensor).map((m) => ({ name: m.name, type: m.type as ElementType, dims: [...m.shape] }));
  return { inputs: values(session.inputMetadata), outputs: values(session.outputMetadata) };
}

async function run(request: Extract<ThreadRequest, { kind: 'run' }>): Promise<TimedOutputs> {
  const session = sessions.get(request.session)!;
  const feeds = Object.fromEntries(Object.entries(request.feeds).map(([name, feed]) => [name, tensor(feed)]));
  const started = now();
  const results = await session.run(feeds, request.outputs);
  const ended = now();
  try {
    const outputs = request.outputs.map((name) => {
      const out = results[name];
      if (out.type !== 'float16' && out.type !== 'float32') throw new Error(`output ${name} is ${out.type}`);
      // A copy of our own (the tensor's memory is onnxruntime's), so its buffer can be transferred.
      const data = out.type === 'float16' ? fromFloat16(out.data as Uint16Array) : (out.data as Float32Array).slice();
      return { data, dims: [...out.dims] };
    });
    return { outputs, started, ended };
  } finally {
    for (const t of Object.values(results)) t.dispose();
  }
}

async function answer(request: ThreadRequest): Promise<{ value: unknown; transfer: ArrayBuffer[] }> {
  switch (request.kind) {
    case 'open': {
      const { model, options } = request;
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
      sessions.set(request.session, session);
      return { value: metadata(session), transfer: [] };
    }
    case 'run': {
      const value = await run(request);
      return { value, transfer: value.outputs.map((o) => o.data.buffer as ArrayBuffer) };
    }
    case 'release': {
      await sessions.get(request.session)?.release();
      sessions.delete(request.session);
      return { value: null, transfer: [] };
    }
    case 'prioritize':
      // pid 0: on Linux, the calling thread only.
      setPriority(0, request.nice);
      return { value: null, transfer: [] };
  }
}

/** Requests are answered one at a time, in order: a run's start is when the thread begins it. */
let queue: Promise<unknown> = Promise.resolve();

const port = parentPort!;
port.on('message', (request: ThreadRequest) => {
  const answered = queue.then(() => answer(request));
  queue = answered.catch(() => undefined);
  void answered.then(
    ({ value, transfer }) => port.postMessage({ id: request.id, ok: true, value } satisfies ThreadReply, transfer),
    (err: unknown) => {
      const error = err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
      port.postMessage({ id: request.id, ok: false, error } satisfies ThreadReply);
    },
  );
});
