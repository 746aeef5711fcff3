/**
 * An S3-compatible server in-process (s3rver) with a local data folder: the default object
 * store of `npm start`, and the real S3 API server the tests run against.
 */
import S3rver from 's3rver';
import { assertPortFree } from '@farm/platform';

export interface EmbeddedS3Options {
  directory: string;
  bucket: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  port?: number;
  address?: string;
}

/** s3rver accepts requests signed with these. */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export class EmbeddedS3 {
  private constructor(
    private readonly server: S3rver,
    readonly endpoint: string,
    readonly bucket: string,
  ) {}

  static async start(options: EmbeddedS3Options): Promise<EmbeddedS3> {
    const address = options.address ?? '127.0.0.1';
    // s3rver reports a port it cannot bind only by crashing the process: check it first.
    await assertPortFree(options.port ?? 0, address, 'EMBEDDED_S3_PORT');
    const server = new S3rver({
      address,
      port: options.port ?? 0,
      silent: true,
      directory: options.directory,
      configureBuckets: [{ name: options.bucket }],
    });
    const bound = await server.run();
    // Keep idle connections open longer than HTTP clients do (undici: 4 s), as S3 itself does;
    // at Node's default of 5 s a client reusing a socket just as the server closes it gets
    // ECONNRESET.
    if (server.httpServer) server.httpServer.keepAliveTimeout = 65_000;
    return new EmbeddedS3(server, `http://${address}:${bound.port}`, options.bucket);
  }

  /** The environment that points the apps at this server. */
  env(): Record<string, string> {
    return {
      S3_ENDPOINT: this.endpoint,
      S3_BUCKET: this.bucket,
      S3_ACCESS_KEY_ID: EMBEDDED_S3_CREDENTIALS.accessKeyId,
      S3_SECRET_ACCESS_KEY: EMBEDDED_S3_CREDENTIALS.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
    };
  }

  close(): Promise<void> {
    return this.server.close();
  }
}
