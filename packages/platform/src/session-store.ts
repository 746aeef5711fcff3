/**
 * Live sessions in Redis, under the farm's key prefix (so Redis Cluster keeps them in one slot):
 * each session's record (tenant, spec, the worker rendering it, its last commit) and canvas
 * state, both expiring after the idle time unless touched; the inbox stream of each worker (what
 * API replicas ask of it: open, update, keyframe, commit, close) and the outbox stream of each
 * session (what its worker answers: JSON messages, frames with their tiles' bytes). Nothing lives
 * in one process, so any API replica can hold a session's socket and any worker can take it over.
 */
import type { FarmRedis } from './redis-connection';
import type { CanvasState, ServerMessage, SessionSpec } from '@farm/contracts';

export interface SessionRecord {
  id: string;
  tenant: string;
  spec: SessionSpec;
  /** The worker rendering it. */
  worker: string;
  /** Its last commit: the job holding the frame, and the state that frame showed. */
  committed?: { jobId: string; state: CanvasState };
}

/** What an API replica asks of a worker about one session. */
export type InboxMessage =
  | { kind: 'open'; session: string; resume: boolean }
  | { kind: 'update'; session: string }
  | { kind: 'keyframe'; session: string }
  | { kind: 'commit'; session: string }
  | { kind: 'close'; session: string };

/**
 * What a worker writes to a session's outbox: the client's messages — frames without their
 * number, which the socket's holder gives them — and the snapshot of a commit, which the API
 * turns into a job before it tells the client.
 */
export type OutboxMessage =
  | Exclude<ServerMessage, { type: 'frame' }>
  | Omit<Extract<ServerMessage, { type: 'frame' }>, 'seq'>
  | { type: 'snapshot'; basedOn: number; jobId: string; key: string; state: CanvasState };

/** One outbox entry as read back: a message and, for frames, the tiles' bytes. */
export interface OutboxEntry {
  id: string;
  message: OutboxMessage;
  tiles: Buffer[];
}

/** Bounds of the streams: a worker's inbox, and a session's outbox (nobody reading: old frames go). */
const INBOX_LENGTH = 10000;
const OUTBOX_LENGTH = 64;

export class SessionStore {
  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    /** How long a session lives without activity. */
    readonly idleSeconds: number,
  ) {}

  private recordKey(id: string): string {
    return `${this.keyPrefix}:session:${id}`;
  }

  private stateKey(id: string): string {
    return `${this.keyPrefix}:session:${id}:state`;
  }

  /** Held while a client's socket is open (one per session), refreshed by its API replica. */
  private socketKey(id: string): string {
    return `${this.keyPrefix}:session:${id}:socket`;
  }

  inboxKey(worker: string): string {
    return `${this.keyPrefix}:session-inbox:${worker}`;
  }

  outboxKey(id: string): string {
    return `${this.keyPrefix}:session:${id}:out`;
  }

  async create(record: SessionRecord, state: CanvasState): Promise<void> {
    await this.redis
      .multi()
      .hset(this.recordKey(record.id), { tenant: record.tenant, spec: JSON.stringify(record.spec), worker: record.worker })
      .expire(this.recordKey(record.id), this.idleSeconds)
      .set(this.stateKey(record.id), JSON.stringify(state), 'EX', this.idleSeconds)
      .exec();
  }

  async get(id: string): Promise<SessionRecord | null> {
    const raw = await this.redis.hgetall(this.recordKey(id));
    if (!raw.tenant) return null;
    return {
      id,
      tenant: raw.tenant,
      spec: JSON.parse(raw.spec) as SessionSpec,
      worker: raw.worker,
      ...(raw.committed ? { committed: JSON.parse(raw.committed) as SessionRecord['committed'] } : {}),
    };
  }

  async state(id: string): Promise<CanvasState | null> {
    const raw = await this.redis.get(this.stateKey(id));
    return raw ? (JSON.parse(raw) as CanvasState) : null;
  }

  /** Stores the state and keeps the session alive for another idle period. */
  async saveState(id: string, state: CanvasState): Promise<void> {
    await this.redis
      .multi()
      .set(this.stateKey(id), JSON.stringify(state), 'EX', this.idleSeconds)
      .expire(this.recordKey(id), this.idleSeconds)
      .expire(this.outboxKey(id), this.idleSeconds)
      .exec();
  }

  /** Keeps the session alive for another idle period. */
  async touch(id: string): Promise<void> {
    await this.redis
      .multi()
      .expire(this.recordKey(id), this.idleSeconds)
      .expire(this.stateKey(id), this.idleSeconds)
      .expire(this.outboxKey(id), this.idleSeconds)
      .exec();
  }

  async exists(id: string): Promise<boolean> {
    return (await this.redis.exists(this.recordKey(id))) === 1;
  }

  /** Moves the session from worker `from` to worker `to`, unless someone already moved it. */
  async reassign(id: string, from: string, to: string): Promise<boolean> {
    const moved = await this.redis.eval(
      "if redis.call('HGET', KEYS[1], 'worker') == ARGV[1] then redis.call('HSET', KEYS[1], 'worker', ARGV[2]) return 1 end return 0",
      1,
      this.recordKey(id),
      from,
      to,
    );
    return moved === 1;
  }

  async setCommitted(id: string, committed: NonNullable<SessionRecord['committed']>): Promise<void> {
    await this.redis.hset(this.recordKey(id), 'committed', JSON.stringify(committed));
  }

  async remove(id: string): Promise<void> {
    await this.redis.del(this.recordKey(id), this.stateKey(id), this.outboxKey(id), this.socketKey(id));
  }

  /** Claims the session's one socket for `ttlMs` (refresh with `holdSocket`); false when a client holds it. */
  async claimSocket(id: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.socketKey(id), '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  async holdSocket(id: string, ttlMs: number): Promise<void> {
    await this.redis.pexpire(this.socketKey(id), ttlMs);
  }

  async send(worker: string, message: InboxMessage): Promise<void> {
    await this.redis.xadd(this.inboxKey(worker), 'MAXLEN', '~', INBOX_LENGTH, '*', 'm', JSON.stringify(message));
  }

  /** Removes a worker's inbox (it stopped). */
  async dropInbox(worker: string): Promise<void> {
    await this.redis.del(this.inboxKey(worker));
  }

  /** Appends a message (and a frame's tiles) to the session's outbox. */
  async publish(id: string, message: OutboxMessage, tiles: readonly Buffer[] = []): Promise<void> {
    const fields: Array<string | Buffer> = ['m', JSON.stringify(message)];
    tiles.forEach((tile, i) => fields.push(`t${i}`, tile));
    await this.redis
      .multi()
      .xadd(this.outboxKey(id), 'MAXLEN', '~', OUTBOX_LENGTH, '*', ...fields)
      .expire(this.outboxKey(id), this.idleSeconds)
      .exec();
  }
}

/** One stream entry's fields ([name, value, …] as Buffers) as an outbox entry. */
export function outboxEntry(id: string, fields: readonly Buffer[]): OutboxEntry {
  let message: OutboxMessage | null = null;
  const tiles: Buffer[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i].toString();
    if (name === 'm') message = JSON.parse(fields[i + 1].toString()) as OutboxMessage;
    else tiles[Number(name.slice(1))] = fields[i + 1];
  }
  if (!message) throw new Error(`outbox entry ${id} has no message`);
  return { id, message, tiles };
}
