/**
 * AWS Signature Version 4 checks for the embedded S3 server. A request passes only when it is
 * signed with the server's credentials — in its Authorization header or as a presigned URL —,
 * the signature is the one the AWS SDK's own signer computes for the request as it arrived
 * (method, path, query, signed headers, payload hash), and it is in date: a header signature
 * within 15 minutes of now, a presigned URL before it expires. Anonymous requests and other
 * signature versions are refused. Pure: no I/O, the clock is a parameter.
 */
import { timingSafeEqual } from 'node:crypto';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import type { HttpRequest, QueryParameterBag } from '@smithy/types';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What the check reads of a request (a node IncomingMessage fits). */
export interface SignedRequest {
  method?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
}

export type SignatureVerdict =
  | {
      ok: true;
      /** The signed payload hash: a hex SHA-256 the body must match, or UNSIGNED-PAYLOAD. */
      payloadHash: string;
      /** The request's raw URL without its signature parameters. */
      unsignedUrl: string;
    }
  | { ok: false; status: number; code: string; message: string };

const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
const MAX_SKEW_MS = 15 * 60 * 1000;
const MAX_EXPIRES_SECONDS = 7 * 24 * 3600;
/** Query parameters of a presigned URL that carry the signature itself. */
const PRESIGN_PARAMS = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature', 'X-Amz-Security-Token'];
const PRESIGN_PARAM_SET = new Set(PRESIGN_PARAMS.map((p) => p.toLowerCase()));

const refuse = (status: number, code: string, message: string): SignatureVerdict => ({ ok: false, status, code, message });

/** `20261129T235248Z` → its time in ms, or NaN. */
function amzDate(value: string | undefined): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

/** The raw query split into [raw pair, decoded name, decoded value]. */
function queryPairs(rawQuery: string): Array<[string, string, string]> {
  return rawQuery
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const [name, value] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
      return [pair, decodeURIComponent(name), decodeURIComponent(value)];
    });
}

function toBag(pairs: Array<[string, string, string]>): QueryParameterBag {
  const bag: Record<string, string | string[]> = {};
  for (const [, name, value] of pairs) {
    const seen = bag[name];
    bag[name] = seen === undefined ? value : ([] as string[]).concat(seen, value);
  }
  return bag;
}

function header(req: SignedRequest, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class SigV4Check {
  private readonly signer: SignatureV4;

  constructor(
    private readonly credentials: S3Credentials,
    private readonly now: () => number = Date.now,
  ) {
    // S3 signs the path as sent (no second escaping) and always signs a payload hash.
    this.signer = new SignatureV4({ credentials, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: true });
  }

  async verify(req: SignedRequest): Promise<SignatureVerdict> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let pairs: Array<[string, string, string]>;
    try {
      pairs = queryPairs(q < 0 ? '' : url.slice(q + 1));
    } catch {
      return refuse(400, 'InvalidArgument', 'the query string is not valid percent-encoding');
    }
    const presigned = pairs.some(([, name]) => name === 'X-Amz-Algorithm');
    const authorization = header(req, 'authorization');
    if (presigned && authorization) return refuse(400, 'InvalidArgument', 'only one auth mechanism allowed: the Authorization header or a presigned URL');
    if (!presigned && !authorization) return refuse(403, 'AccessDenied', 'anonymous access is not allowed: sign requests with AWS Signature Version 4');
    const base = { method: req.method ?? 'GET', protocol: 'http:', hostname: '', path };
    if (presigned) {
      const unsigned = pairs.filter(([, name]) => !PRESIGN_PARAM_SET.has(name.toLowerCase()));
      const unsignedUrl = unsigned.length > 0 ? `${path}?${unsigned.map(([raw]) => raw).join('&')}` : path;
      return this.verifyPresigned(req, base, pairs, unsigned, unsignedUrl);
    }
    return this.verifyHeader(req, base, pairs, authorization!, url);
  }

  /** Checks the credential scope and the date shared by both mechanisms; returns the region. */
  private scope(credential: string, date: string): { region: string; time: number } | SignatureVerdict {
    const [accessKeyId, day, region, service, terminator, ...rest] = credential.split('/');
    if (rest.length > 0 || !day || !region || service !== 's3' || terminator !== 'aws4_request') {
      return refuse(400, 'AuthorizationHeaderMalformed', `the credential scope ${JSON.stringify(credential)} is not <key>/<yyyymmdd>/<region>/s3/aws4_request`);
    }
    if (!sameText(accessKeyId, this.credentials.accessKeyId)) {
      return refuse(403, 'InvalidAccessKeyId', 'the access key id you provided does not exist in our records');
    }
    const time = amzDate(date);
    if (Number.isNaN(time) || !date.startsWith(day)) return refuse(400, 'AuthorizationHeaderMalformed', 'the signing date is missing, malformed or outside the credential scope');
    return { region, time };
  }

  private async verifyHeader(
    req: SignedRequest,
    base: Pick<HttpRequest, 'method' | 'protocol' | 'hostname' | 'path'>,
    pairs: Array<[string, string, string]>,
    authorization: string,
    url: string,
  ): Promise<SignatureVerdict> {
    const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(authorization);
    if (!m) {
      return authorization.startsWith(ALGORITHM)
        ? refuse(400, 'AuthorizationHeaderMalformed', 'the Authorization header is not Credential=…, SignedHeaders=…, Signature=…')
        : refuse(403, 'AccessDenied', 'only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted');
    }
    const [, credential, signedList, signature] = m;
    const payloadHash = header(req, 'x-amz-content-sha256');
    if (!payloadHash) return refuse(400, 'InvalidRequest', 'missing required header for this request: x-amz-content-sha256');
    const scope = this.scope(credential, header(req, 'x-amz-date') ?? '');
    if ('ok' in scope) return scope;
    if (Math.abs(this.now() - scope.time) > MAX_SKEW_MS) {
      return refuse(403, 'RequestTimeTooSkewed', 'the difference between the request time and the current time is too large');
    }
    const signedHeaders = signedList.split(';');
    if (!signedHeaders.includes('host')) return refuse(403, 'AccessDenied', 'the host header must be signed');
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) headers[name] = header(req, name) ?? '';
    const signed = await this.signer.sign(
      { ...base, query: toBag(pairs), headers },
      { signingDate: new Date(scope.time), signingRegion: scope.region, signableHeaders: new Set(signedHeaders) },
    );
    const expected = /SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(signed.headers.authorization)!;
    if (expected[1] !== signedList || !sameText(expected[2], signature)) {
      return refuse(403, 'SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided');
    }
    return { ok: true, payloadHash, unsignedUrl: url };
  }

  private async verifyPresigned(
    req: SignedRequest,
    base: Pick<HttpRequest, 'method' | 'protocol' | 'hostname' | 'path'>,
    pairs: Array<[string, string, string]>,
    unsigned: Array<[string, string, string]>,
    unsignedUrl: string,
  ): Promise<SignatureVerdict> {
    const param = (name: string) => pairs.find(([, n]) => n === name)?.[2];
    if (param('X-Amz-Algorithm') !== ALGORITHM) return refuse(403, 'AccessDenied', 'only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted');
    const [credential, date, expires, signedList, signature] = ['X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'].map(param);
    if (!credential || !expires || !signedList || !signature || !/^\d+$/.test(expires)) {
      return refuse(400, 'AuthorizationQueryParametersError', `a presigned URL needs ${PRESIGN_PARAMS.slice(0, 6).join(', ')}`);
    }
    const scope = this.scope(credential, date ?? '');
    if ('ok' in scope) return scope;
    const expiresIn = Number(expires);
    if (expiresIn < 1 || expiresIn > MAX_EXPIRES_SECONDS) return refuse(400, 'AuthorizationQueryParametersError', 'X-Amz-Expires must be between 1 and 604800 seconds');
    const now = this.now();
    if (now > scope.time + expiresIn * 1000) return refuse(403, 'AccessDenied', 'request has expired');
    if (scope.time > now + MAX_SKEW_MS) return refuse(403, 'AccessDenied', 'request is not yet valid');

    // Rebuilt as the signer saw it before presigning: signed headers stay headers, the other
    // x-amz-* parameters (hoisted by the signer) go back to headers, the rest stays in the query.
    const signedHeaders = signedList.split(';');
    if (!signedHeaders.includes('host')) return refuse(403, 'AccessDenied', 'the host header must be signed');
    const headers: Record<string, string> = {};
    for (const name of signedHeaders) headers[name] = header(req, name) ?? '';
    const query = unsigned.filter(([, name]) => !name.toLowerCase().startsWith('x-amz-'));
    for (const [, name, value] of unsigned) if (name.toLowerCase().startsWith('x-amz-')) headers[name] = value;
    // Without X-Amz-Content-Sha256 a presigned URL's payload is unsigned; the hash then takes
    // part in the signature without being a header or a parameter.
    const keepOut = new Set(signedHeaders);
    const payloadHash = unsigned.find(([, name]) => name.toLowerCase() === 'x-amz-content-sha256')?.[2];
    if (payloadHash === undefined) {
      headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
      keepOut.add('x-amz-content-sha256');
    }
    const presignedAgain = await this.signer.presign(
      { ...base, query: toBag(query), headers },
      {
        signingDate: new Date(scope.time),
        expiresIn,
        signingRegion: scope.region,
        signableHeaders: new Set(signedHeaders),
        unsignableHeaders: payloadHash === undefined ? new Set(['x-amz-content-sha256']) : undefined,
        unhoistableHeaders: keepOut,
      },
    );
    const expected = presignedAgain.query!['X-Amz-Signature'] as string;
    if (presignedAgain.query!['X-Amz-SignedHeaders'] !== signedList || !sameText(expected, signature)) {
      return refuse(403, 'SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided');
    }
    return { ok: true, payloadHash: payloadHash ?? UNSIGNED_PAYLOAD, unsignedUrl };
  }
}
