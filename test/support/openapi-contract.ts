/**
 * An API's answers checked against its OpenAPI 3.1 document with ajv: the route and method must
 * be documented (or the answer be the JSON 404/405 of an unknown route), the status documented
 * for the operation, the content type among the documented ones, the documented required headers
 * present, and the body (JSON) or each Server-Sent Event (the media type's `x-itemSchema`) valid
 * against its schema. Pure: it is given the document and the answers.
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';

type Json = any; // parts of an OpenAPI document, walked structurally

const DOC_ID = 'openapi-document';

interface Operation {
  pattern: RegExp;
  template: string;
  literalChars: number;
  methods: Record<string, Json>;
}

export interface Answer {
  method: string;
  /** The request's path, without the query. */
  path: string;
  status: number;
  headers: Headers;
}

/** Rewrites `#/components/…` references to the document's registered id, so any fragment compiles alone. */
function absoluteRefs(value: Json): Json {
  if (Array.isArray(value)) return value.map(absoluteRefs);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${DOC_ID}${v}` : absoluteRefs(v)]),
    );
  }
  return value;
}

export class OpenApiContract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
  private readonly validators = new WeakMap<object, ValidateFunction>();
  private readonly operations: Operation[];
  private readonly doc: Json;

  constructor(document: Json) {
    addFormats(this.ajv);
    this.doc = absoluteRefs(document);
    this.ajv.addSchema({ $id: DOC_ID, components: this.doc.components }, DOC_ID);
    this.operations = Object.entries(this.doc.paths as Record<string, Json>)
      .map(([template, methods]) => ({
        template,
        methods,
        literalChars: template.replace(/\{[^}]+\}/g, '').length,
        pattern: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`),
      }))
      // The most literal template first: /docs before /docs/{asset}, /v1/jobs/{id}/events before a catch-all.
      .sort((a, b) => b.literalChars - a.literalChars);
  }

  /** The documented response of an answer, or why there is none. */
  private responseOf(answer: Answer): { spec: Json; where: string } | { problem: string } | null {
    const where = `${answer.method} ${answer.path} → ${answer.status}`;
    const operation = this.operations.find((o) => o.pattern.test(answer.path))?.methods[answer.method.toLowerCase()];
    if (!operation) {
      // An unknown route: the API's JSON 404 (or 405), checked against its Error schema below.
      if (answer.status === 404 || answer.status === 405) return { spec: { content: { 'application/json': { schema: { $ref: `${DOC_ID}#/components/schemas/Error` } } } }, where };
      return { problem: `${where}: the document has no operation ${answer.method} for this path` };
    }
    const responses = operation.responses ?? {};
    const spec = responses[String(answer.status)] ?? responses[`${String(answer.status)[0]}XX`] ?? responses.default;
    if (!spec) return { problem: `${where}: status ${answer.status} is not documented (documented: ${Object.keys(responses).join(', ')})` };
    return { spec, where };
  }

  private validator(schema: Json): ValidateFunction {
    let validate = this.validators.get(schema);
    if (!validate) this.validators.set(schema, (validate = this.ajv.compile(schema)));
    return validate;
  }

  private errors(schema: Json, value: unknown, where: string): string[] {
    const validate = this.validator(schema);
    if (validate(value)) return [];
    return [`${where}: ${this.ajv.errorsText(validate.errors, { dataVar: 'body', separator: '; ' }).slice(0, 2000)}`];
  }

  /** Problems with an answer and its whole body (empty when it matches the document). */
  check(answer: Answer, body: string): string[] {
    const found = this.responseOf(answer);
    if (!found) return [];
    if ('problem' in found) return [found.problem];
    const { spec, where } = found;
    const problems: string[] = [];
    for (const [name, header] of Object.entries((spec.headers ?? {}) as Record<string, Json>)) {
      if (header.required && !answer.headers.has(name)) problems.push(`${where}: the documented header ${name} is missing`);
    }
    const type = (answer.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const content = spec.content as Record<string, Json> | undefined;
    if (!content) {
      if (body.length > 0) problems.push(`${where}: a body (${type || 'no content type'}) where the document describes none`);
      return problems;
    }
    const media = content[type];
    if (!media) return [...problems, `${where}: content type "${type}" is not documented (documented: ${Object.keys(content).join(', ')})`];
    if (type === 'application/json') {
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch {
        return [...problems, `${where}: the body is not JSON: ${body.slice(0, 200)}`];
      }
      problems.push(...this.errors(media.schema, value, where));
    }
    return problems;
  }

  /** Problems with a value that should be an instance of the named component schema (a webhook body, say). */
  checkComponent(name: string, value: unknown, where: string): string[] {
    const schema = this.doc.components.schemas[name];
    if (!schema) return [`${where}: the document has no component schema ${name}`];
    return this.errors(schema, value, where);
  }

  /** The schema of one event of an answer's event stream (`x-itemSchema`), if it is one. */
  eventSchema(answer: Answer): Json | null {
    const found = this.responseOf(answer);
    if (!found || 'problem' in found) return null;
    return found.spec.content?.['text/event-stream']?.['x-itemSchema'] ?? null;
  }

  /** Problems with one Server-Sent Event (`data` is its raw data text). */
  checkEvent(answer: Answer, schema: Json, event: string, data: string): string[] {
    const where = `${answer.method} ${answer.path} event "${event}"`;
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return [`${where}: data is not JSON: ${data.slice(0, 200)}`];
    }
    return this.errors(schema, { event, data: value }, where);
  }
}

/** Splits a Server-Sent Events text into complete events (name and data), returning the unfinished rest. */
export function splitEvents(text: string): { events: Array<{ event: string; data: string }>; rest: string } {
  const blocks = text.replace(/\r\n?/g, '\n').split('\n\n');
  const rest = blocks.pop()!;
  const events = blocks.flatMap((block) => {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    return data.length > 0 ? [{ event, data: data.join('\n') }] : [];
  });
  return { events, rest };
}
