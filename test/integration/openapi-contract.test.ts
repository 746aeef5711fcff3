/**
 * The OpenAPI document the API serves, judged by standard tools: Redocly's linter (the rules in
 * redocly.yaml) finds nothing in it; openapi-typescript generates types from it that compile under
 * strict TypeScript and, with openapi-fetch, submit and fetch a real job; Swagger UI at /docs
 * loads from the API itself. Every answer of every integration test is checked against the same
 * document (test/support/contract-fetch.ts); the last tests show that check catches contradictions.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { DEFAULT_LIMITS } from '@farm/contracts';
import { Harness, TestApi } from '../support/harness';
import { OpenApiContract } from '../support/openapi-contract';

const ROOT = path.resolve(__dirname, '../..');
const run = promisify(execFile);

let farm: Harness;
let api: TestApi;
let doc: any;
let work: string;

beforeAll(async () => {
  farm = new Harness();
  api = await farm.startApi({ limits: { ...DEFAULT_LIMITS, maxSize: 1024 } });
  await farm.startWorker();
  doc = await (await api.as(null).fetch('/openapi.json')).json();
  // Under the repository, so the generated client resolves openapi-fetch and @types/node.
  mkdirSync(path.join(ROOT, 'tmp'), { recursive: true });
  work = mkdtempSync(path.join(ROOT, 'tmp', 'openapi-'));
  writeFileSync(path.join(work, 'openapi.json'), JSON.stringify(doc));
});
afterAll(async () => {
  await farm.close();
  rmSync(work, { recursive: true, force: true });
});

const operations = () =>
  Object.entries(doc.paths as Record<string, Record<string, any>>).flatMap(([p, methods]) => Object.entries(methods).map(([method, op]) => ({ route: `${method.toUpperCase()} ${p}`, op })));

describe('the document', () => {
  it('lints clean with Redocly (recommended rules, as redocly.yaml sets them)', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'test/support/lint-openapi.mjs'), path.join(work, 'openapi.json')]);
    expect(JSON.parse(stdout)).toEqual([]);
  });

  it('names every operation, says where the API is, and describes every error answer with the Error body', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.servers).toEqual([expect.objectContaining({ url: '/' })]);
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids).toEqual(expect.arrayContaining(['submitJob', 'getJob', 'cancelJob', 'streamJobEvents', 'listWorkers', 'getWebhookSecret', 'createApiKey', 'listWorkerHosts', 'inspectJob', 'getHealth']));
    expect(new Set(ids).size).toBe(ids.length);
    for (const { route, op } of operations()) {
      for (const [status, answer] of Object.entries(op.responses as Record<string, any>)) {
        if (Number(status) >= 400 && !['GET /healthz', 'GET /readyz'].includes(route)) {
          expect({ route, status, schema: answer.content?.['application/json']?.schema }).toEqual({ route, status, schema: { $ref: '#/components/schemas/Error' } });
        }
      }
    }
  });

  it('states the real constraints of a submission, from the limits the API runs with', () => {
    const body = doc.paths['/v1/jobs'].post.requestBody.content['application/json'].schema;
    const [generate, edit] = body.oneOf;
    expect(generate.properties.width).toMatchObject({ type: 'integer', minimum: 64, maximum: 1024, multipleOf: 8, default: 512 });
    expect(generate.properties.prompt).toMatchObject({ type: 'string', pattern: '\\S', maxLength: 1000 });
    expect(generate.additionalProperties).toBe(false);
    // Fields with a default may be left out.
    expect(generate.required).toEqual(['type', 'prompt']);
    expect(edit.required).toEqual(['type', 'source', 'prompt']);
    expect(doc.components.schemas.Job.properties.status.enum).toEqual(['queued', 'running', 'succeeded', 'failed', 'canceled']);
    expect(doc.paths['/v1/workers'].get.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/WorkerList' });
    expect(doc.components.schemas.WebhookSecret.properties.secret.pattern).toMatch(/whsec_/);
  });

  it('holds exactly the README’s closed lists of codes: error answers (Error) and failed jobs (JobError)', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const table = (heading: string) => [...new RegExp(`### ${heading}\\n([\\s\\S]*?)\\n#`).exec(readme)![1].matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(doc.components.schemas.Error.properties.error.properties.code.enum).toEqual(table('Error codes'));
    expect(doc.components.schemas.JobError.properties.code.enum).toEqual(table('Job failure codes'));
    // The enum is what every answer of the suite is checked against: an unlisted code is refused.
    const unlisted = new OpenApiContract(doc).check({ method: 'GET', path: '/v1/jobs/abc', status: 404, headers: new Headers({ 'content-type': 'application/json' }) }, JSON.stringify({ error: { code: 'no_such_code', message: 'x' } }));
    expect(unlisted.join('\n')).toMatch(/error\/code.*allowed values/);
  });

  it('describes the event stream and the webhook deliveries', () => {
    const stream = doc.paths['/v1/jobs/{id}/events'].get.responses['200'].content['text/event-stream'];
    expect(stream['x-itemSchema']).toEqual({ $ref: '#/components/schemas/JobStreamEvent' });
    const variants = doc.components.schemas.JobStreamEvent.anyOf ?? doc.components.schemas.JobStreamEvent.oneOf;
    const events = variants.map((e: any) => e.properties.event.enum[0]);
    expect(events).toEqual(['queued', 'queued', 'started', 'progress', 'succeeded', 'failed', 'canceled']);
    expect(Object.keys(doc.webhooks)).toEqual(['jobStarted', 'jobProgress', 'jobFinished']);
    for (const { post: delivery } of Object.values(doc.webhooks) as any[]) {
      expect(delivery.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/WebhookEvent' });
      expect(delivery.parameters.map((p: any) => p.name)).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    }
    expect(doc.components.schemas.WebhookEvent.properties.type.enum).toEqual(['job.started', 'job.progress', 'job.succeeded', 'job.failed', 'job.canceled']);
  });
});

describe('a client generated from it (openapi-typescript + openapi-fetch)', () => {
  const program = (body: string) => `import createClient from 'openapi-fetch';
import type { paths } from './schema';

const client = createClient<paths>({ baseUrl: process.env.FARM_API_URL!, headers: { Authorization: \`Bearer \${process.env.FARM_API_KEY}\` } });
${body}
`;
  const compile = (file: string) => {
    const tsProgram = ts.createProgram([file], {
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      esModuleInterop: true,
      skipLibCheck: true,
      types: ['node'],
      outDir: path.dirname(file),
    });
    const diagnostics = ts.getPreEmitDiagnostics(tsProgram).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    if (diagnostics.length === 0) tsProgram.emit();
    return diagnostics;
  };

  beforeAll(async () => {
    await run(process.execPath, [path.join(ROOT, 'node_modules/openapi-typescript/bin/cli.js'), path.join(work, 'openapi.json'), '-o', path.join(work, 'schema.d.ts')]);
  });

  it('compiles under strict TypeScript, then submits a job with only its required fields and fetches it finished', async () => {
    const file = path.join(work, 'client.ts');
    writeFileSync(
      file,
      program(`
async function main(): Promise<void> {
  const submitted = await client.POST('/v1/jobs', { body: { type: 'generate', prompt: 'a red circle on a blue background', width: 64, height: 64 } });
  if (!submitted.data) throw new Error(\`submit: \${JSON.stringify(submitted.error)}\`);
  let job = submitted.data;
  while (job.status === 'queued' || job.status === 'running') {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const fetched = await client.GET('/v1/jobs/{id}', { params: { path: { id: job.id } } });
    if (!fetched.data) throw new Error(\`get: \${fetched.error.error.code}\`);
    job = fetched.data;
  }
  const result = job.result;
  console.log(JSON.stringify({ id: job.id, status: job.status, width: result?.width, url: result?.url, steps: job.request.steps }));
}
main().catch((err) => { console.error(err); process.exit(1); });
`),
    );
    expect(compile(file)).toEqual([]);
    const { stdout } = await run(process.execPath, [file.replace(/\.ts$/, '.js')], { env: { ...process.env, FARM_API_URL: api.base, FARM_API_KEY: api.key! } });
    const out = JSON.parse(stdout);
    expect(out).toMatchObject({ status: 'succeeded', width: 64, steps: 4 });
    expect((await fetch(out.url)).status).toBe(200);
  });

  it('does not compile a submission without its prompt, or a route the API does not have', () => {
    const file = path.join(work, 'wrong.ts');
    writeFileSync(file, program(`void client.POST('/v1/jobs', { body: { type: 'generate', width: 64 } });\nvoid client.GET('/v1/job/{id}', {});`));
    const diagnostics = compile(file).join('\n');
    expect(diagnostics).toMatch(/'prompt' is missing/);
    expect(diagnostics).toMatch(/"\/v1\/job\/\{id\}"/);
  });
});

describe('/docs', () => {
  it('serves Swagger UI on this document from the API itself (no other origin)', async () => {
    const page = await (await api.as(null).fetch('/docs')).text();
    expect(page).toContain("url: '/openapi.json'");
    const assets = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(assets).toEqual(expect.arrayContaining(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js']));
    for (const asset of assets) {
      expect(asset).toMatch(/^\/docs\//);
      const res = await api.as(null).fetch(asset);
      expect({ asset, status: res.status }).toEqual({ asset, status: 200 });
      await res.arrayBuffer();
    }
    expect((await api.as(null).fetch('/docs/index.html')).status).toBe(404); // the package's demo page is not served
  });
});

describe('the check of every answer against the document', () => {
  const contract = () => new OpenApiContract(doc);
  const json = new Headers({ 'content-type': 'application/json' });

  it('accepts a real answer and refuses a body that contradicts its schema', async () => {
    const res = await api.fetch('/v1/workers');
    const body = await res.text();
    expect(contract().check({ method: 'GET', path: '/v1/workers', status: res.status, headers: res.headers }, body)).toEqual([]);
    const wrong = contract().check({ method: 'GET', path: '/v1/workers', status: 200, headers: json }, JSON.stringify({ workers: [{ id: 1 }], models: [] }));
    expect(wrong.join('\n')).toMatch(/GET \/v1\/workers → 200: .*workers\/0/);
  });

  it('refuses undocumented statuses, content types, operations and missing required headers', () => {
    const error = JSON.stringify({ error: { code: 'x', message: 'y' } });
    expect(contract().check({ method: 'GET', path: '/v1/jobs/abc', status: 418, headers: json }, error)[0]).toMatch(/status 418 is not documented/);
    expect(contract().check({ method: 'GET', path: '/v1/jobs/abc', status: 200, headers: new Headers({ 'content-type': 'text/plain' }) }, 'hi')[0]).toMatch(/content type "text\/plain" is not documented/);
    expect(contract().check({ method: 'PUT', path: '/v1/jobs/abc', status: 200, headers: json }, '{}')[0]).toMatch(/no operation PUT/);
    expect(contract().check({ method: 'POST', path: '/v1/jobs', status: 202, headers: json }, readFileSync(path.join(work, 'openapi.json'), 'utf8')).join('\n')).toMatch(/header Location is missing/);
  });

  it('checks each event of a job stream', () => {
    const answer = { method: 'GET', path: '/v1/jobs/abc/events', status: 200, headers: new Headers({ 'content-type': 'text/event-stream' }) };
    const schema = contract().eventSchema(answer);
    expect(contract().checkEvent(answer, schema, 'progress', JSON.stringify({ step: 1, total: 4 }))).toEqual([]);
    expect(contract().checkEvent(answer, schema, 'progress', JSON.stringify({ step: 'one' })).join('\n')).toMatch(/event "progress"/);
    expect(contract().checkEvent(answer, schema, 'finished', '{}').join('\n')).toMatch(/event "finished"/);
  });
});
