/** Results in S3 (AWS, MinIO or the embedded s3rver) behind a small class: put, get (whole or a byte range), presign, health. */
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3Target } from './s3-address';
import { S3Presign } from './s3-presign';
import { S3Put } from './s3-put';
import { StartupError } from './startup-error';

export interface ObjectStoreOptions {
  bucket: string;
  region: string;
  endpoint?: string;
  /** Endpoint used in presigned URLs (default: endpoint). */
  publicEndpoint?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
  /** Presigned URL lifetime in seconds (default 3600). */
  presignTtlSeconds?: number;
  /** How long results (and cached latents) are kept, in seconds (default: for ever). */
  retentionSeconds?: number;
}

/** Bytes of an object: `length` (at least 1) of them from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** An object as a listing shows it. */
export interface StoredObject {
  key: string;
  lastModified: Date;
}

/** Maps the storage section of the environment (see env-config.ts) to store options. */
export function objectStoreOptionsFromEnv(env: {
  S3_BUCKET: string;
  S3_REGION: string;
  S3_ENDPOINT?: string;
  S3_PUBLIC_ENDPOINT?: string;
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
  S3_FORCE_PATH_STYLE?: boolean;
  PRESIGN_TTL_SECONDS: number;
  RESULT_RETENTION_SECONDS: number;
}): ObjectStoreOptions {
  return {
    bucket: env.S3_BUCKET,
    region: env.S3_REGION,
    endpoint: env.S3_ENDPOINT,
    publicEndpoint: env.S3_PUBLIC_ENDPOINT,
    accessKeyId: env.S3_ACCESS_KEY_ID,
    secretAccessKey: env.S3_SECRET_ACCESS_KEY,
    forcePathStyle: env.S3_FORCE_PATH_STYLE ?? env.S3_ENDPOINT !== undefined,
    presignTtlSeconds: env.PRESIGN_TTL_SECONDS,
    retentionSeconds: env.RESULT_RETENTION_SECONDS,
  };
}

/** The HTTP status an S3 call failed with, if it got an answer. */
function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

export class ObjectStore {
  readonly bucket: string;
  /** Where the store is, for messages. */
  readonly endpoint: string;
  private readonly client: S3Client;
  /** PutObject, the per-job call, and GET URLs, the per-read one, without the SDK's middleware (s3-put.ts, s3-presign.ts). */
  private readonly putter: S3Put;
  private readonly presigner: S3Presign;
  /** How long results are kept, in seconds (undefined: for ever). */
  readonly retentionSeconds?: number;
  private readonly ttl: number;

  constructor(options: ObjectStoreOptions) {
    // Node 20 is this project's runtime by choice; the SDK's notice about its future support
    // policy would otherwise be printed by every process at start-up.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.bucket = options.bucket;
    this.ttl = options.presignTtlSeconds ?? 3600;
    this.retentionSeconds = options.retentionSeconds;
    const credentials =
      options.accessKeyId && options.secretAccessKey ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } : undefined;
    this.client = new S3Client({
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials,
      // Fail fast and let the job queue do the retrying.
      maxAttempts: 2,
      // No CRC32 over every body sent and received (the SDK's default since 2025): TLS and S3's
      // own checks cover transfers, and a checksum per image costs the worker CPU per job.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.endpoint = options.endpoint ?? `AWS S3 (${options.region})`;
    const target: S3Target = {
      bucket: options.bucket,
      region: options.region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: credentials ?? this.client.config.credentials,
    };
    this.putter = new S3Put(target);
    this.presigner = new S3Presign({ ...target, endpoint: options.publicEndpoint ?? options.endpoint });
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    await this.putter.put(key, body, contentType);
  }

  /** The object, or only the bytes of `range` (one ranged GET). */
  async get(key: string, range?: ByteRange): Promise<Buffer> {
    const Range = range && `bytes=${range.offset}-${range.offset + range.length - 1}`;
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range }));
    const body = Buffer.from(await out.Body!.transformToByteArray());
    // A store that ignores the range (s3rver does for `bytes=0-0`) answers with more: never pass that off as the range.
    if (range && body.byteLength !== range.length) throw new Error(`${key}: asked for ${Range}, got ${body.byteLength} bytes`);
    return body;
  }

  /** The keys of the objects under `prefix` (every page). */
  async keys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of this.list(prefix)) keys.push(...page.map((o) => o.key));
    return keys;
  }

  /** Deletes the objects (absent ones included). */
  async remove(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((key) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))));
  }

  /** A GET URL that plain curl can download until it expires (not after `until`, ms, if given: the object's own end). */
  presignGet(key: string, until?: number): Promise<string> {
    const expiresIn = until === undefined ? this.ttl : Math.max(1, Math.min(this.ttl, Math.floor((until - Date.now()) / 1000)));
    return this.presigner.get(key, expiresIn);
  }

  /** Every object under `prefix`, page by page. */
  async *list(prefix = ''): AsyncGenerator<StoredObject[]> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      yield (page.Contents ?? []).flatMap((o) => (o.Key && o.LastModified ? [{ key: o.Key, lastModified: o.LastModified }] : []));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Asks the store to expire objects after the retention itself (an S3 lifecycle rule, whole
   * days); false when it does not support lifecycle rules or no retention is set.
   */
  async applyLifecycle(): Promise<boolean> {
    if (this.retentionSeconds === undefined) return false;
    try {
      await this.client.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket: this.bucket,
          LifecycleConfiguration: {
            Rules: [{ ID: 'farm-result-retention', Status: 'Enabled', Filter: { Prefix: '' }, Expiration: { Days: Math.max(1, Math.ceil(this.retentionSeconds / 86400)) } }],
          },
        }),
      );
      return true;
    } catch {
      return false;
    }
  }

  /** True when the bucket answers. */
  async ping(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The start-up check: the bucket answers (created first when `create` and it is missing), or a
   * StartupError says in one line what is wrong — the endpoint unreachable, the credentials
   * refused, the bucket missing.
   */
  async verify(create: boolean): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (!create || s3Status(err) !== 404) throw this.startupFailure(err);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw this.startupFailure(err);
    }
  }

  private startupFailure(err: unknown): StartupError {
    const at = `S3 at ${this.endpoint}`;
    const status = s3Status(err);
    if (status === 404) return new StartupError(`bucket ${this.bucket} does not exist at ${this.endpoint}: create it, or set S3_CREATE_BUCKET=true`);
    if (status === 403) return new StartupError(`${at} refused access to bucket ${this.bucket}: check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY`);
    const { name, code, message } = err as { name?: string; code?: string; message?: string };
    if (name === 'CredentialsProviderError') return new StartupError(`no S3 credentials: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY (or give the process an AWS role)`);
    if (code && /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|EHOSTUNREACH)$/.test(code)) {
      return new StartupError(`${at} does not answer (${code}): check S3_ENDPOINT`);
    }
    return new StartupError(`${at}: ${name ?? 'error'}${status ? ` (HTTP ${status})` : ''}: ${(message ?? '').split('\n')[0]}`);
  }

  close(): void {
    this.putter.close();
    this.client.destroy();
  }
}
