/** Results in S3 (AWS, MinIO or the embedded s3rver) behind a small class: put, presign, health. */
import {
  CreateBucketCommand,
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

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
  };
}

export class ObjectStore {
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly presigner: S3Client;
  private readonly ttl: number;

  constructor(options: ObjectStoreOptions) {
    // Node 20 is this project's runtime by choice; the SDK's notice about its future support
    // policy would otherwise be printed by every process at start-up.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.bucket = options.bucket;
    this.ttl = options.presignTtlSeconds ?? 3600;
    const make = (endpoint?: string) =>
      new S3Client({
        region: options.region,
        endpoint,
        forcePathStyle: options.forcePathStyle ?? false,
        credentials:
          options.accessKeyId && options.secretAccessKey
            ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey }
            : undefined,
        // Fail fast and let the job queue do the retrying.
        maxAttempts: 2,
      });
    this.client = make(options.endpoint);
    this.presigner = options.publicEndpoint ? make(options.publicEndpoint) : this.client;
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  async get(key: string): Promise<Buffer> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  /** A GET URL that plain curl can download until it expires. */
  presignGet(key: string): Promise<string> {
    return getSignedUrl(this.presigner, new GetObjectCommand({ Bucket: this.bucket, Key: key }), { expiresIn: this.ttl });
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

  /** Creates the bucket if it does not answer (idempotent). */
  async ensureBucket(): Promise<void> {
    if (await this.ping()) return;
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
    }
  }

  close(): void {
    this.client.destroy();
    if (this.presigner !== this.client) this.presigner.destroy();
  }
}
