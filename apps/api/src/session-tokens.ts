/**
 * Short-lived, single-use tokens for a session's WebSocket: browsers cannot send an
 * Authorization header with one, so the key's holder gets a token with the session and puts it
 * in the socket's query string. Only the token's SHA-256 is stored, for `ttlSeconds`.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FarmRedis } from '@farm/platform';

export interface TokenGrant {
  tenant: string;
  session: string;
}

export class SessionTokens {
  constructor(
    private readonly redis: FarmRedis,
    private readonly keyPrefix: string,
    readonly ttlSeconds = 60,
  ) {}

  private key(token: string): string {
    return `${this.keyPrefix}:session-token:${createHash('sha256').update(token).digest('hex')}`;
  }

  async issue(grant: TokenGrant): Promise<string> {
    const token = randomBytes(24).toString('base64url');
    await this.redis.set(this.key(token), JSON.stringify(grant), 'EX', this.ttlSeconds);
    return token;
  }

  /** What the token grants, once; null when it is unknown, used or expired. */
  async redeem(token: string): Promise<TokenGrant | null> {
    const raw = await this.redis.getdel(this.key(token));
    return raw ? (JSON.parse(raw) as TokenGrant) : null;
  }
}
