/**
 * The WebSocket side of sessions on the API's HTTP server: an upgrade to `/v1/sessions/:id/ws`
 * is authenticated like the rest of /v1 (`Authorization: Bearer <key>`, or `?token=` from the
 * session's creation for browsers), refused with a plain HTTP answer before the socket opens
 * when it is not the tenant's session or already has a client, and otherwise handed to a
 * SessionConnection. Upgrades to other paths are refused with 404.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FarmRedis } from '@farm/platform';
import { WebSocketServer } from 'ws';
import { ApiErrorCode, RequestLimits, clientMessageSchema } from '@farm/contracts';
import type { ApiKeyStore, SessionHosts, SessionStore } from '@farm/platform';
import { AuthMode, PUBLIC_TENANT } from './auth';
import { OutboxReader } from './outbox-reader';
import { SessionConnection, SessionConnectionDeps, WATCH_MS } from './session-connection';
import type { SessionTokens } from './session-tokens';

export interface SessionSocketDeps extends Omit<SessionConnectionDeps, 'outbox' | 'messageSchema'> {
  redis: FarmRedis;
  keyPrefix: string;
  auth: AuthMode;
  keys: ApiKeyStore;
  tokens: SessionTokens;
  sessions: SessionStore;
  hosts: SessionHosts;
  limits: RequestLimits;
}

const WS_PATH = /^\/v1\/sessions\/([\w-]{1,64})\/ws$/;

/** Answers an upgrade request with a plain HTTP error and closes the connection. */
function refuse(socket: Duplex, status: number, code: ApiErrorCode, message: string): void {
  const body = JSON.stringify({ error: { code, message } });
  const reason = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 503: 'Service Unavailable' }[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n` +
      (status === 401 ? 'WWW-Authenticate: Bearer realm="farm"\r\n' : '') +
      `\r\n${body}`,
  );
}

export class SessionSockets {
  private readonly wss: WebSocketServer;
  private readonly outbox: OutboxReader;
  private readonly messageSchema: ReturnType<typeof clientMessageSchema>;

  constructor(private readonly deps: SessionSocketDeps) {
    // The payload cap is generous: larger messages are refused with an error message, not a close.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 4 * deps.maxMessageBytes });
    this.outbox = new OutboxReader(deps.redis, deps.sessions, deps.keyPrefix);
    this.messageSchema = clientMessageSchema(deps.limits);
  }

  /** Takes the server's upgrade requests. */
  attach(server: Server): void {
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => undefined);
      this.upgrade(req, socket, head).catch((err) => refuse(socket, 503, 'unavailable', `the session could not be opened: ${err.message}`));
    });
  }

  private async tenantOf(req: IncomingMessage, url: URL, session: string): Promise<string | null> {
    if (this.deps.auth === 'disabled') return PUBLIC_TENANT;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (bearer) return (await this.deps.keys.lookup(bearer[1]))?.tenant ?? null;
    const token = url.searchParams.get('token');
    const grant = token ? await this.deps.tokens.redeem(token) : null;
    return grant && grant.session === session ? grant.tenant : null;
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://farm');
    const match = WS_PATH.exec(url.pathname);
    if (!match) return refuse(socket, 404, 'not_found', `no WebSocket at ${url.pathname}`);
    const id = match[1];
    const tenant = await this.tenantOf(req, url, id);
    if (!tenant) return refuse(socket, 401, 'unauthorized', 'send an API key as "Authorization: Bearer <key>", or the session\'s token as ?token=');
    const { sessions } = this.deps;
    const [record, state] = await Promise.all([sessions.get(id), sessions.state(id)]);
    // Another tenant's session is as absent as a missing one.
    if (!record || !state || record.tenant !== tenant) return refuse(socket, 404, 'not_found', `no session with id ${id}`);
    if (!(await sessions.claimSocket(id, 3 * WATCH_MS))) return refuse(socket, 409, 'session_in_use', `session ${id} already has a client`);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      new SessionConnection(ws, record, state, { ...this.deps, outbox: this.outbox, messageSchema: this.messageSchema }).start();
    });
  }

  /** Closes every socket (their sessions end) and the outbox reader. */
  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.close(1001, 'the API is shutting down');
    this.wss.close();
    await this.outbox.close();
  }
}
