/**
 * Runs before every test file (jest `setupFilesAfterEnv`): wraps the global `fetch`, so every
 * answer a test receives from a watched farm API — through the harness, @farm/client, the CLI
 * or a plain fetch — is checked against the OpenAPI document that API serves
 * (openapi-contract.ts). A JSON answer that contradicts the document makes that fetch reject; a
 * Server-Sent Event that does is reported when the test ends. APIs are watched by their base
 * URL: the Harness watches the ones it starts; tests that start API processes call `watchApi`.
 */
import { OpenApiContract, splitEvents } from './openapi-contract';

type FetchInput = Parameters<typeof fetch>[0];

const realFetch = globalThis.fetch;
/** Watched origins → their document, once read (null until then). */
const watched = new Map<string, Promise<OpenApiContract> | null>();
const violations: string[] = [];

/** Checks every later answer from the API at `base` against its /openapi.json. */
export function watchApi(base: string): void {
  const origin = new URL(base).origin;
  if (!watched.has(origin)) watched.set(origin, null);
}

/** The contract of a watched origin, its document read at the first answer (the API may not listen before). */
async function contractFor(origin: string): Promise<OpenApiContract | null> {
  if (!watched.has(origin)) return null;
  let loading = watched.get(origin);
  if (!loading) {
    loading = realFetch(`${origin}/openapi.json`)
      .then((res) => res.json())
      .then((doc) => new OpenApiContract(doc));
    watched.set(origin, loading);
    loading.catch(() => watched.set(origin, null)); // not up yet: read it again next time
  }
  return loading.catch(() => null);
}

function requestOf(input: FetchInput, init?: RequestInit): { method: string; url: URL } {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  return { method, url };
}

/** Passes an event stream through unchanged, checking each complete event on the way. */
function inspectEvents(body: ReadableStream<Uint8Array>, onEvents: (text: string) => string): ReadableStream<Uint8Array> {
  const decoder = new TextDecoder();
  let pending = '';
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        pending = onEvents(pending + decoder.decode(chunk, { stream: true }));
        controller.enqueue(chunk);
      },
    }),
  );
}

globalThis.fetch = async (input: FetchInput, init?: RequestInit): Promise<Response> => {
  const res = await realFetch(input, init);
  const { method, url } = requestOf(input, init);
  // CORS preflights (OPTIONS) are the browser's protocol, not operations of the API.
  const contract = url.pathname === '/openapi.json' || method === 'OPTIONS' ? null : await contractFor(url.origin);
  if (!contract) return res;
  const answer = { method, path: url.pathname, status: res.status, headers: res.headers };

  const eventSchema = res.headers.get('content-type')?.startsWith('text/event-stream') ? contract.eventSchema(answer) : null;
  if (eventSchema && res.body) {
    const problems = contract.check(answer, '');
    violations.push(...problems);
    const body = inspectEvents(res.body, (text) => {
      const { events, rest } = splitEvents(text);
      for (const { event, data } of events) violations.push(...contract.checkEvent(answer, eventSchema, event, data));
      return rest;
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }

  const problems = contract.check(answer, method === 'HEAD' ? '' : await res.clone().text());
  if (problems.length > 0) {
    violations.push(...problems);
    throw new Error(`the answer contradicts the API's OpenAPI document:\n${problems.join('\n')}`);
  }
  return res;
};

afterEach(() => {
  const found = violations.splice(0);
  if (found.length > 0) throw new Error(`answers contradicted the API's OpenAPI document:\n${found.join('\n')}`);
});
