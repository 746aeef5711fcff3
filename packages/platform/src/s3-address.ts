/**
 * Where a bucket's objects are, as the SDK addresses them: path style (`endpoint/bucket/key`) or
 * virtual-hosted (`bucket.host/key`) — path style when forced, or when the bucket's name is no DNS
 * label (dots, capitals, underscores: its host would not resolve or match S3's certificate) — at
 * `https://s3.<region>.amazonaws.com` unless an endpoint is set, keys percent-encoded segment by
 * segment. The one place that maps bucket and key to a request's host and path, and makes the
 * SigV4 signer, for what the farm signs itself (s3-put.ts, s3-presign.ts).
 */
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** A bucket, where it is and how to sign for it. */
export interface S3Target {
  bucket: string;
  region: string;
  /** `https://s3.<region>.amazonaws.com` unless set. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Fixed, or the SDK's provider (environment, profile, instance role; cached and refreshed by it). */
  credentials: Credentials | (() => Promise<Credentials>);
}

/** A request as SigV4 signs it (the shape of the SDK's HttpRequest). */
export interface S3Request {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
}

/** RFC 3986 percent-encoding, as SigV4 and S3 expect: only unreserved characters kept. */
export function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Each path segment of a key percent-encoded as S3 expects (RFC 3986 unreserved kept, '/' kept). */
export function encodeKey(key: string): string {
  return key.split('/').map(escapeUri).join('/');
}

/** Whether the SDK addresses a bucket virtual-hosted when not forced to path style: a DNS label of 3–63 lowercase letters, digits and hyphens. */
export function virtualHostable(bucket: string): boolean {
  return /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket);
}

/** The SDK's own SigV4 signer for the bucket's S3 (paths sent as encoded here, not encoded again). */
export function s3Signer(target: Pick<S3Target, 'region' | 'credentials'>): SignatureV4 {
  return new SignatureV4({ credentials: target.credentials, region: target.region, service: 's3', sha256: Sha256, uriEscapePath: false });
}

export class S3Address {
  /** The bucket's origin: protocol, host (the bucket's own when virtual-hosted) and port. */
  readonly base: URL;
  private readonly prefix: string;

  constructor(target: Pick<S3Target, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>) {
    const endpoint = new URL(target.endpoint ?? `https://s3.${target.region}.amazonaws.com`);
    const pathStyle = target.forcePathStyle || !virtualHostable(target.bucket);
    if (!pathStyle) endpoint.hostname = `${target.bucket}.${endpoint.hostname}`;
    this.base = endpoint;
    this.prefix = `${endpoint.pathname.replace(/\/$/, '')}${pathStyle ? `/${encodeKey(target.bucket)}` : ''}`;
  }

  /** The path of a key's object (encoded, as sent). */
  path(key: string): string {
    return `${this.prefix}/${encodeKey(key)}`;
  }

  /** A request for a key's object, to be signed: no query, `host` the only header. */
  request(method: string, key: string): S3Request {
    return {
      method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      port: this.base.port ? Number(this.base.port) : undefined,
      path: this.path(key),
      query: {},
      headers: { host: this.base.host },
    };
  }
}
