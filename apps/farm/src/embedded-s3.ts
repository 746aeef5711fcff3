/**
 * An S3-compatible server in-process with a local data folder: the default object store of
 * `npm start`, and the real S3 API server the tests run against. s3rver stores and serves the
 * objects but checks no signature, so it listens only on a Unix socket in a private folder;
 * the port clients reach lets a request through only when its AWS Signature V4 — header or
 * presigned URL — verifies against this server's credentials (and, for a signed payload, the
 * body hashes to what was signed). Anonymous requests get 403.
 *
 * The farm stores an object per job, so PutObject is the hot path: a signed PUT of a whole object
 * into the bucket goes straight into s3rver's own store (the same files its GET serves), without
 * the second HTTP hop and s3rver's Koa stack, which cost about 3 ms of CPU per object.
 * Everything else — reads, lists, deletes, other buckets, copies, multipart, CORS — is s3rver's.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import S3rver from 's3rver';
import S3Object from 's3rver/lib/models/object';
import { listen } from '@farm/platform';
import { S3Credentials, SigV4Check, UNSIGNED_PAYLOAD } from './sigv4-check';
import { makeSocketFolder, removeDeadSocketFolders } from './socket-folders';

export type { S3Credentials };

export interface EmbeddedS3Options {
  directory: string;
  bucket: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  port?: number;
  address?: string;
  /** The only credentials it accepts (default: fresh random ones). */
  credentials?: S3Credentials;
}

/** Largest signed body it buffers to check against its hash (the farm stores images and latents). */
const MAX_SIGNED_BODY_BYTES = 256 * 1024 * 1024;

/** Fresh credentials for a server of one's own. */
export function randomS3Credentials(): S3Credentials {
  return { accessKeyId: `farm${randomBytes(8).toString('hex')}`, secretAccessKey: randomBytes(30).toString('base64url') };
}

function s3Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message.replace(/[<>&]/g, ' ')}</Message></Error>`;
  res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_SIGNED_BODY_BYTES) req.destroy(new Error('body too large'));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * The key of a PUT the front stores itself: a whole object (no subresource, copy or multipart
 * query) into `bucket`, path style, from a non-browser client (CORS stays s3rver's); null for
 * anything else. The AWS SDK adds `x-id=PutObject` to its PutObject requests.
 */
export function directPutKey(method: string | undefined, unsignedUrl: string, bucket: string, headers: http.IncomingHttpHeaders): string | null {
  if (method !== 'PUT' || headers['x-amz-copy-source'] !== undefined || headers.origin !== undefined) return null;
  const [pathname, query] = unsignedUrl.split('?', 2);
  if (query !== undefined && query !== '' && query !== 'x-id=PutObject') return null;
  const prefix = `/${bucket}/`;
  if (!pathname.startsWith(prefix) || pathname.length === prefix.length) return null;
  try {
    return decodeURIComponent(pathname.slice(prefix.length));
  } catch {
    return null;
  }
}

/**
 * Bodies up to this size are written synchronously: an asynchronous file call costs about 65 µs
 * of CPU in threadpool hand-offs on a VM (open, write and close for each of three files), several
 * times the cost of copying a few KB into the page cache.
 */
const SYNC_WRITE_BYTES = 1024 * 1024;

/**
 * s3rver's putObject for a body in memory, into the same three files (the object, its MD5, and
 * its metadata: the headers S3Object keeps, less those s3rver derives when serving). s3rver's own
 * writes them one after another, and answers before the object's write has finished (a GET
 * right after could read it short) or could fail (unhandled); here all three are written before
 * the answer, at once.
 */
async function storeWhole(store: S3rver['store'], object: S3Object): Promise<string> {
  const { bucket, key, content } = object;
  const md5 = createHash('md5').update(content).digest('hex');
  const { 'last-modified': _modified, etag: _etag, 'content-length': _length, ...metadata } = object.metadata;
  const files: Array<[string, string | Buffer]> = [
    [store.getResourcePath(bucket, key, 'object'), content],
    [store.getResourcePath(bucket, key, 'object.md5'), md5],
    [store.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(metadata, null, 2)],
  ];
  const folder = path.dirname(files[0][0]);
  if (content.length <= SYNC_WRITE_BYTES) {
    mkdirSync(folder, { recursive: true });
    for (const [file, data] of files) writeFileSync(file, data);
  } else {
    await mkdir(folder, { recursive: true });
    await Promise.all(files.map(([file, data]) => writeFile(file, data)));
  }
  return md5;
}

export class EmbeddedS3 {
  private constructor(
    private readonly front: http.Server,
    private readonly backend: http.Server,
    private readonly agent: http.Agent,
    private readonly socketDir: string,
    readonly endpoint: string,
    readonly bucket: string,
    readonly credentials: S3Credentials,
  ) {}

  static async start(options: EmbeddedS3Options): Promise<EmbeddedS3> {
    const address = options.address ?? '127.0.0.1';
    const credentials = options.credentials ?? randomS3Credentials();
    const s3rver = new S3rver({ silent: true, directory: options.directory, configureBuckets: [{ name: options.bucket }] });
    await s3rver.configureBuckets();
    await removeDeadSocketFolders().catch((err) => console.error(`embedded S3: could not remove the socket folders of dead servers: ${err.message}`));
    const { folder: socketDir, socketPath } = makeSocketFolder();
    const backend = await s3rver.listen(socketPath);
    // A fresh socket per request (cheap on a Unix socket): a kept-alive one can be closed by
    // s3rver's idle timeout just as it is reused, which would fail that request.
    const agent = new http.Agent({ keepAlive: false });
    const check = new SigV4Check(credentials);

    const front = http.createServer(async (req, res) => {
      try {
        // CORS preflights carry no credentials by design; they reveal no object.
        const verdict = req.method === 'OPTIONS' ? { ok: true as const, payloadHash: UNSIGNED_PAYLOAD, unsignedUrl: req.url! } : await check.verify(req);
        if (!verdict.ok) return s3Error(res, verdict.status, verdict.code, verdict.message);
        let body: Buffer | null = null;
        if (/^[0-9a-f]{64}$/.test(verdict.payloadHash)) {
          if (Number(req.headers['content-length'] ?? 0) > MAX_SIGNED_BODY_BYTES) return s3Error(res, 400, 'EntityTooLarge', `signed bodies are limited to ${MAX_SIGNED_BODY_BYTES} bytes here`);
          body = await readBody(req);
          if (createHash('sha256').update(body).digest('hex') !== verdict.payloadHash) {
            return s3Error(res, 400, 'XAmzContentSHA256Mismatch', 'the provided x-amz-content-sha256 header does not match what was computed');
          }
        } else if (verdict.payloadHash !== UNSIGNED_PAYLOAD) {
          return s3Error(res, 501, 'NotImplemented', `payload signing ${verdict.payloadHash} is not supported by the embedded S3`);
        }
        const headers = { ...req.headers };
        delete headers.authorization;
        const key = body && directPutKey(req.method, verdict.unsignedUrl, options.bucket, headers);
        if (body && key !== null) {
          const md5 = await storeWhole(s3rver.store, new S3Object(options.bucket, key, body, headers));
          res.writeHead(200, { ETag: JSON.stringify(md5), 'Content-Length': 0 });
          return res.end();
        }
        // Authenticated: s3rver serves it as it would an anonymous request.
        const upstream = http.request({ socketPath, agent, method: req.method, path: verdict.unsignedUrl, headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        upstream.on('error', (err) => (res.headersSent ? res.destroy(err) : s3Error(res, 500, 'InternalError', err.message)));
        if (body) upstream.end(body);
        else req.pipe(upstream);
      } catch (err) {
        if (!res.headersSent) s3Error(res, 500, 'InternalError', (err as Error).message);
      }
    });
    // Keep idle connections open longer than HTTP clients do (undici: 4 s), as S3 itself does;
    // at Node's default of 5 s a client reusing a socket just as the server closes it gets
    // ECONNRESET.
    front.keepAliveTimeout = 65_000;
    await listen(front, options.port ?? 0, address, 'EMBEDDED_S3_PORT');
    const { port } = front.address() as { port: number };
    return new EmbeddedS3(front, backend, agent, socketDir, `http://${address}:${port}`, options.bucket, credentials);
  }

  /** The environment that points the apps at this server. */
  env(): Record<string, string> {
    return {
      S3_ENDPOINT: this.endpoint,
      S3_BUCKET: this.bucket,
      S3_ACCESS_KEY_ID: this.credentials.accessKeyId,
      S3_SECRET_ACCESS_KEY: this.credentials.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
    };
  }

  async close(): Promise<void> {
    const closed = (server: http.Server) => new Promise((resolve) => server.close(resolve));
    this.front.closeAllConnections();
    await closed(this.front);
    this.agent.destroy();
    this.backend.closeAllConnections();
    await closed(this.backend);
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}
