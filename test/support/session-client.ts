/**
 * A live-session client for tests, over a real WebSocket (ws): it opens a session through the
 * API, collects the server's messages — each frame with its tiles' bytes, which follow it as
 * binary messages — keeps the composed image up to date, and waits for messages by predicate.
 */
import sharp from 'sharp';
import WebSocket from 'ws';
import type { ServerMessage, Tile } from '@farm/contracts';

/** The API as this client needs it (the harness's TestApi is one; benchmarks make their own). */
export interface SessionApi {
  base: string;
  key: string | null;
  fetch(path: string, init?: RequestInit): Promise<Response>;
}

export type FrameMessage = Extract<ServerMessage, { type: 'frame' }>;
export interface Frame extends FrameMessage {
  data: Buffer[];
}
export type Received = Exclude<ServerMessage, FrameMessage> | Frame;

export async function openSession(api: SessionApi, body: Record<string, unknown>): Promise<{ status: number; body: Record<string, any> }> {
  const res = await api.fetch('/v1/sessions', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

export class SessionClient {
  readonly received: Received[] = [];
  /** The image as the frames so far compose it (RGB). */
  image: Buffer | null = null;
  private pending: { frame: FrameMessage; data: Buffer[] } | null = null;
  private waiters: Array<() => void> = [];
  private composing = Promise.resolve();
  closed: { code: number; reason: string } | null = null;

  private constructor(
    readonly ws: WebSocket,
    readonly width: number,
    readonly height: number,
    private readonly composes: boolean,
  ) {
    ws.on('message', (data, isBinary) => this.receive(data as Buffer, isBinary));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.notify();
    });
  }

  /**
   * Connects to a session (an API key header, or a token in the query string). Without `compose`
   * (benchmarks) the frames' tiles are only collected, not decoded into `image`.
   */
  static connect(
    api: SessionApi,
    session: { id: string; links: { ws: string } },
    size: { width: number; height: number },
    auth: { token?: string; key?: string | null } = {},
    compose = true,
  ): Promise<SessionClient> {
    const base = api.base.replace(/^http/, 'ws');
    const query = auth.token ? `?token=${encodeURIComponent(auth.token)}` : '';
    const key = auth.key === undefined ? api.key : auth.key;
    const ws = new WebSocket(`${base}${session.links.ws}${query}`, { headers: key && !auth.token ? { Authorization: `Bearer ${key}` } : {} });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new SessionClient(ws, size.width, size.height, compose)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  private receive(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.pending!.data.push(data);
      if (this.pending!.data.length === this.pending!.frame.tiles.length) this.frameDone();
      return;
    }
    const message = JSON.parse(data.toString()) as ServerMessage;
    if (message.type === 'frame') {
      this.pending = { frame: message, data: [] };
      if (message.tiles.length === 0) this.frameDone();
      return;
    }
    this.received.push(message);
    this.notify();
  }

  private frameDone(): void {
    const { frame, data } = this.pending!;
    this.pending = null;
    const done: Frame = { ...frame, data };
    if (this.composes) this.composing = this.composing.then(() => this.compose(done.tiles, data));
    void this.composing.then(() => {
      this.received.push(done);
      this.notify();
    });
  }

  private async compose(tiles: readonly Tile[], data: readonly Buffer[]): Promise<void> {
    this.image ??= Buffer.alloc(this.width * this.height * 3);
    for (let i = 0; i < tiles.length; i++) {
      const t = tiles[i];
      const pixels = await sharp(data[i]).removeAlpha().raw().toBuffer();
      for (let row = 0; row < t.h; row++) pixels.copy(this.image, ((t.y + row) * this.width + t.x) * 3, row * t.w * 3, (row + 1) * t.w * 3);
    }
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The first message received from `from` on that satisfies the predicate. */
  async waitFor<T extends Received>(predicate: (m: Received) => m is T, from?: number, timeoutMs?: number): Promise<T>;
  async waitFor(predicate: (m: Received) => boolean, from?: number, timeoutMs?: number): Promise<Received>;
  async waitFor(predicate: (m: Received) => boolean, from = 0, timeoutMs = 60000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.slice(from).find(predicate);
      if (found) return found;
      if (this.closed) throw new Error(`the socket closed (${this.closed.code} ${this.closed.reason}) while waiting`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such message within ${timeoutMs} ms; received: ${this.received.map((m) => m.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The first frame based on update `seq` or a later one. */
  frameFor(seq: number, from = 0): Promise<Frame> {
    return this.waitFor((m): m is Frame => m.type === 'frame' && m.basedOn >= seq, from);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}
