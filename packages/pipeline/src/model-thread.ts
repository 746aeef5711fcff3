/**
 * The model's own thread, as the worker's thread sees it. onnxruntime-node computes a session's
 * `run` on the thread that calls it, so a UNet call on the worker's thread would hold its event
 * loop — no Redis, no S3, no settling, no fetching — for the whole call. Here the sessions live
 * on a thread of their own (onnx-thread.ts) and each call is a message: the worker's thread stays
 * free to decode, encode, upload and complete finished jobs while the next tick's UNet runs.
 * Calls run on the thread one at a time, in the order they were made.
 *
 * Inputs are copied to the thread; outputs come back as float32 arrays whose buffers are moved,
 * not copied. A call the thread fails rejects with an Error carrying onnxruntime's message, as a
 * call on this thread did. If the thread itself dies, every call made or still to come rejects
 * with ModelThreadError, and the owner is told (a worker then exits: it could run no job). The
 * thread holds the process open only while a call is under way.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { InferenceSession } from 'onnxruntime-node';
import type { ElementType } from '@farm/model-tools';
import type { PartSignature } from './model-signature';

/** One input: its values and the element type the session takes (converted on the thread). */
export interface Feed {
  type: ElementType;
  values: Float32Array | Float64Array;
  dims: readonly number[];
}

export type SessionMetadata = PartSignature;

/** A run's outputs as float32, and when it ran (ms since the epoch, comparable across threads). */
export interface TimedOutputs {
  outputs: { data: Float32Array; dims: number[] }[];
  started: number;
  ended: number;
}

/** What the thread is asked to do. */
export type ThreadCall =
  | { kind: 'open'; session: number; model: string | Uint8Array; options: InferenceSession.SessionOptions }
  | { kind: 'run'; session: number; feeds: Record<string, Feed>; outputs: string[] }
  | { kind: 'release'; session: number }
  | { kind: 'prioritize'; nice: number };

export type ThreadRequest = ThreadCall & { id: number };

export type ThreadReply = { id: number } & ({ ok: true; value: unknown } | { ok: false; error: { name: string; message: string } });

/** What became of a request for the model thread's nice value. */
export type ThreadPriority = { nice: number; applied: true } | { nice: number; applied: false; reason: string };

/** For start-up logs: the model thread's priority, or why it kept its own. */
export function describePriority(p: ThreadPriority): string {
  return p.applied ? `model thread at nice ${p.nice}` : `model thread at normal priority (nice ${p.nice} refused: ${p.reason}; it needs CAP_SYS_NICE or root)`;
}

/** The model thread stopped (it crashed, or the model was released): no call can run. */
export class ModelThreadError extends Error {
  override readonly name = 'ModelThreadError';
}

/** The thread's compiled program; from the sources (tests) as from the build, it is the build's. */
const PROGRAM = path.resolve(__dirname, '../dist/onnx-thread.js');

/** A copy of the caller's array with a buffer of its own, exactly its size, to move to the thread. */
function own<T extends Float32Array | Float64Array | Uint8Array>(data: T): T {
  return data.slice() as T;
}

export class ModelThread {
  private readonly thread = new Worker(PROGRAM);
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  private nextSession = 1;
  private stopped: ModelThreadError | null = null;

  /** `onFailure`: the thread died (not closed): every call from now on rejects. */
  constructor(private readonly onFailure?: (err: ModelThreadError) => void) {
    this.thread.unref();
    this.thread.on('message', (reply: ThreadReply) => {
      const call = this.pending.get(reply.id);
      if (!call) return;
      this.settled(reply.id);
      if (reply.ok) call.resolve(reply.value);
      else call.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name }));
    });
    this.thread.on('error', (err) => this.failed(new ModelThreadError(`the model thread failed: ${err.message}`)));
    this.thread.on('exit', (code) => this.failed(new ModelThreadError(`the model thread exited (code ${code})`)));
  }

  /** Opens a session on the thread; resolves with its handle and its inputs' and outputs' metadata. */
  async open(model: string | Uint8Array, options: InferenceSession.SessionOptions): Promise<{ session: number; metadata: SessionMetadata }> {
    const session = this.nextSession++;
    const bytes = typeof model === 'string' ? model : own(model);
    const metadata = (await this.call({ kind: 'open', session, model: bytes, options }, typeof bytes === 'string' ? [] : [bytes.buffer as ArrayBuffer])) as SessionMetadata;
    return { session, metadata };
  }

  run(session: number, feeds: Record<string, Feed>, outputs: readonly string[]): Promise<TimedOutputs> {
    const copies: Record<string, Feed> = {};
    for (const [name, feed] of Object.entries(feeds)) copies[name] = { ...feed, values: own(feed.values) };
    const transfer = Object.values(copies).map((f) => f.values.buffer as ArrayBuffer);
    return this.call({ kind: 'run', session, feeds: copies, outputs: [...outputs] }, transfer) as Promise<TimedOutputs>;
  }

  async release(session: number): Promise<void> {
    await this.call({ kind: 'release', session }, []);
  }

  /**
   * Sets the thread's nice value (Linux: per thread; the threads onnxruntime starts on it later
   * inherit it). Raising priority (a lower value) needs CAP_SYS_NICE or root; refused, the
   * thread keeps its priority and the answer says why.
   */
  async prioritize(nice: number): Promise<ThreadPriority> {
    try {
      await this.call({ kind: 'prioritize', nice }, []);
      return { nice, applied: true };
    } catch (err) {
      if (err instanceof ModelThreadError) throw err;
      return { nice, applied: false, reason: (err as Error).message };
    }
  }

  /** Stops the thread (the sessions' memory goes with it); calls made later reject. */
  async close(): Promise<void> {
    this.stop(new ModelThreadError('the model was released'));
    await this.thread.terminate();
  }

  private call(call: ThreadCall, transfer: ArrayBuffer[]): Promise<unknown> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.thread.ref();
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...call, id } satisfies ThreadRequest, transfer);
    });
  }

  private settled(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.thread.unref();
  }

  private failed(reason: ModelThreadError): void {
    if (this.stopped) return; // closed, or already reported
    this.stop(reason);
    this.onFailure?.(reason);
  }

  private stop(reason: ModelThreadError): void {
    this.stopped ??= reason;
    for (const [id, call] of this.pending) {
      this.settled(id);
      call.reject(this.stopped);
    }
  }
}
