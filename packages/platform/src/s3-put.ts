/**
 * S3's PutObject without the SDK's middleware stack. Every job stores its image (and its edit
 * state) this way; the SDK's PutObjectCommand cost the worker about 5 ms of CPU per object
 * (serde schemas, endpoint rules, retry and logging middleware) — at GPU rates, more than the
 * model's own time per image. Here one request is signed with SigV4 by the SDK's own signer
 * (payload hashed) and sent over a keep-alive connection: about 1 ms. Addressing as the SDK's
 * (s3-address.ts). Like the SDK with `maxAttempts: 2`, a request that got no answer or a 5xx is
 * tried once more; a failure throws an Error named by S3's error code, with
 * `$metadata.httpStatusCode` as the SDK's errors carry.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { SignatureV4 } from '@smithy/signature-v4';
import { S3Address, S3Target, s3Signer } from './s3-address';

export class S3Put {
  private readonly signer: SignatureV4;
  private readonly address: S3Address;
  private readonly agent: http.Agent;

  constructor(target: S3Target) {
    this.address = new S3Address(target);
    this.agent = this.address.base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.signer = s3Signer(target);
  }

  async put(key: string, body: Buffer, contentType: string): Promise<void> {
    try {
      await this.attempt(key, body, contentType);
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status !== undefined && status < 500) throw err;
      await this.attempt(key, body, contentType);
    }
  }

  private async attempt(key: string, body: Buffer, contentType: string): Promise<void> {
    const request = this.address.request('PUT', key);
    const signed = await this.signer.sign({
      ...request,
      headers: {
        ...request.headers,
        'content-type': contentType,
        'content-length': String(body.length),
        'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
      },
    });
    const { base } = this.address;
    const transport = base.protocol === 'https:' ? https : http;
    await new Promise<void>((resolve, reject) => {
      const req = transport.request({ agent: this.agent, method: 'PUT', hostname: base.hostname, port: base.port, path: request.path, headers: signed.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve();
          const text = Buffer.concat(chunks).toString('utf8');
          const code = /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? `HTTP${status}`;
          const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? `S3 answered ${status}`;
          reject(Object.assign(new Error(message), { name: code, $metadata: { httpStatusCode: status } }));
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
