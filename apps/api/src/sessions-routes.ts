/**
 * `POST /v1/sessions`: opens a live canvas session — its state checked as a generation request
 * would be, a worker of its model chosen by load, the session recorded in Redis and announced to
 * that worker (which starts rendering the first frame at once) — and answers 201 with its id, the
 * path of its WebSocket and a single-use token for browsers to open it with.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { Router } from 'express';
import { CanvasState, RequestLimits, SessionCreated, SessionSpec, describeIssues, sessionRequestSchema } from '@farm/contracts';
import type { ModelQueues, SessionHosts, SessionStore } from '@farm/platform';
import { tenantOf } from './auth';
import { HttpError } from './http-errors';
import { canvasStateProblems } from './session-checks';
import type { SessionTokens } from './session-tokens';

export interface SessionsRouteDeps {
  queues: ModelQueues;
  sessions: SessionStore;
  hosts: SessionHosts;
  tokens: SessionTokens;
  limits: RequestLimits;
}

export const SESSIONS_PATH = '/v1/sessions';

export function sessionsRoutes(deps: SessionsRouteDeps): Router {
  const router = Router();
  const schema = sessionRequestSchema(deps.limits);

  router.post('/sessions', async (req, res) => {
    const tenant = tenantOf(res);
    if (!req.is('application/json')) throw new HttpError(415, 'unsupported_media_type', 'send the session as JSON with Content-Type: application/json');
    const parsed = schema.safeParse(req.body);
    const invalid = (problems: ReturnType<typeof describeIssues>) =>
      new HttpError(400, 'invalid_request', problems.map((p) => `${p.path}: ${p.message}`).join('; '), problems);
    if (!parsed.success) throw invalid(describeIssues(parsed.error.issues));
    const request = parsed.data;
    const model = request.model ?? deps.queues.defaultModel;
    if (!deps.queues.get(model)) throw invalid([{ path: 'model', message: `unknown model "${model}"; this farm serves: ${deps.queues.models.join(', ')}` }]);
    const spec: SessionSpec = { width: request.width, height: request.height, steps: request.steps, guidanceScale: request.guidanceScale, format: request.format, model };
    const state: CanvasState = { seq: 0, prompt: request.prompt, negativePrompt: request.negativePrompt, seed: request.seed ?? randomInt(0, 2 ** 32), regions: request.regions ?? {} };
    const problems = await canvasStateProblems(state, spec, deps.limits, Object.keys(state.regions));
    if (problems.length > 0) throw invalid(problems);

    const worker = await deps.hosts.pick(model);
    if (!worker) {
      res.setHeader('Retry-After', '2');
      throw new HttpError(503, 'no_worker', `no live worker serves model ${model} yet; try again shortly`);
    }
    const id = randomUUID();
    await deps.sessions.create({ id, tenant, spec, worker }, state);
    await deps.sessions.send(worker, { kind: 'open', session: id, resume: false });
    const token = await deps.tokens.issue({ tenant, session: id });
    const created: SessionCreated = { id, token, tokenExpiresInSeconds: deps.tokens.ttlSeconds, seed: state.seed, links: { ws: `${SESSIONS_PATH}/${id}/ws` } };
    res.status(201).json(created);
  });

  return router;
}
