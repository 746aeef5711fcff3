/**
 * The worker's side of live sessions: it reads its inbox stream (open, update, keyframe, commit,
 * close) on a Redis connection of its own, keeps each session it renders as a LiveSession (their
 * lanes share the worker's stream batch with queued jobs), beats its liveness and load so API
 * replicas can place sessions and notice its death, and drops sessions that expired or moved.
 */
import { type FarmRedis, type InboxMessage, type SessionHosts, type SessionStore, blockingDuplicate } from '@farm/platform';
import { LiveSession, LiveSessionDeps } from './live-session';

export interface SessionHostOptions extends Omit<LiveSessionDeps, 'sessions'> {
  /** A connection to duplicate for the blocking inbox reads. */
  redis: FarmRedis;
  sessions: SessionStore;
  hosts: SessionHosts;
  workerId: string;
  model: string;
  /** Queued jobs this worker holds (its load beside the sessions). */
  jobsInFlight: () => number;
}

/** How often held sessions are checked for expiry or a move to another worker. */
const SWEEP_MS = 2000;

export class SessionHost {
  private readonly live = new Map<string, LiveSession>();
  private reader: FarmRedis | null = null;
  private reading: Promise<void> | null = null;
  private stopping = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: SessionHostOptions) {}

  /** Sessions rendered here. */
  get size(): number {
    return this.live.size;
  }

  async start(): Promise<void> {
    const { sessions, workerId } = this.options;
    await sessions.dropInbox(workerId); // a previous life's messages are not ours to replay
    this.reader = blockingDuplicate(this.options.redis);
    this.reader.on('error', () => undefined); // the worker's own connection reports outages
    this.reading = this.read(sessions.inboxKey(workerId));
    await this.beat();
    this.timers = [
      setInterval(() => void this.beat(), this.options.hosts.ttlMs / 3),
      setInterval(() => void this.sweep(), SWEEP_MS),
    ];
  }

  private async beat(): Promise<void> {
    const { hosts, workerId, model, jobsInFlight } = this.options;
    await hosts.beat(workerId, { model, load: jobsInFlight() + this.live.size }).catch((err) => console.error(`worker: session heartbeat failed: ${err.message}`));
  }

  private async read(inbox: string): Promise<void> {
    let last = '0-0';
    while (!this.stopping) {
      let reply: Array<[string, Array<[string, string[]]>]> | null;
      try {
        reply = (await this.reader!.xread('COUNT', 100, 'BLOCK', 1000, 'STREAMS', inbox, last)) as typeof reply;
      } catch (err) {
        if (this.stopping) return;
        console.error(`worker: reading the session inbox failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      for (const [, entries] of reply ?? []) {
        for (const [id, fields] of entries) {
          last = id;
          await this.handle(JSON.parse(fields[1]) as InboxMessage).catch((err) => console.error(`worker: session message: ${err.message}`));
        }
      }
      if (reply) await this.reader!.xtrim(inbox, 'MINID', last).catch(() => undefined);
    }
  }

  private async handle(message: InboxMessage): Promise<void> {
    if (message.kind === 'open') return void (await this.open(message.session, message.resume));
    if (message.kind === 'close') return this.drop(message.session);
    const held = this.live.get(message.session);
    if (held) return held[message.kind]();
    // A session this worker does not hold but whose record names it: it restarted under its id.
    const adopted = await this.open(message.session, true);
    if (message.kind !== 'update') adopted?.[message.kind]();
  }

  private async open(id: string, resume: boolean): Promise<LiveSession | undefined> {
    const held = this.live.get(id);
    if (held) return held;
    const record = await this.options.sessions.get(id);
    if (!record || record.worker !== this.options.workerId) return undefined;
    const session = new LiveSession(record, this.options);
    this.live.set(id, session);
    if (resume) await session.resume();
    else session.update();
    return session;
  }

  private async drop(id: string): Promise<void> {
    const session = this.live.get(id);
    this.live.delete(id);
    await session?.close();
  }

  /** Drops sessions whose record expired (idle) or that an API replica moved to another worker. */
  private async sweep(): Promise<void> {
    for (const id of this.live.keys()) {
      const record = await this.options.sessions.get(id).catch(() => undefined);
      if (record === null || (record && record.worker !== this.options.workerId)) await this.drop(id);
    }
  }

  /** Stops taking messages and closes every session here (API replicas move them elsewhere). */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.options.hosts.leave(this.options.workerId).catch(() => undefined);
    await Promise.all([...this.live.keys()].map((id) => this.drop(id)));
    this.reader?.disconnect();
    await this.reading;
    await this.options.sessions.dropInbox(this.options.workerId).catch(() => undefined);
  }
}
