/** The description of the live canvas sessions (sessions-routes.ts, and session-sockets.ts for the WebSocket). */
import { z } from 'zod';
import { sessionCreatedSchema, sessionRequestSchema } from '@farm/contracts';
import { DocContext, TENANT_ERRORS, TENANT_SECURITY, errorResponses, json } from './responses';

const sessionIdParams = z.object({ id: z.string().min(1).meta({ description: 'The session id (from its creation)' }) });

export function describeSessionRoutes({ registry, limits }: DocContext): void {
  registry.registerPath({
    method: 'post',
    path: '/v1/sessions',
    operationId: 'openSession',
    tags: ['sessions'],
    summary: 'Open a live canvas session',
    description: "Frames stream on the session's WebSocket (`links.ws`); the README describes its messages.",
    security: TENANT_SECURITY,
    request: { body: { required: true, content: { 'application/json': { schema: sessionRequestSchema(limits) } } } },
    responses: {
      201: json(sessionCreatedSchema, 'Opened: its id, the WebSocket path and a single-use token for browsers'),
      ...errorResponses([400, 413, 415, ...TENANT_ERRORS], { 503: '`queue_unavailable` (Redis is unreachable) or `no_worker` (no live worker serves the model yet)' }),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/v1/sessions/{id}/ws',
    operationId: 'sessionSocket',
    tags: ['sessions'],
    summary: "The session's WebSocket (an upgrade): updates in, frames out",
    description: 'Authenticated by the API key or, where headers cannot be set (browsers), the single-use `token`.',
    security: [...TENANT_SECURITY, {}],
    request: {
      params: sessionIdParams,
      query: z.object({ token: z.string().optional().meta({ description: "The session's single-use token, instead of the API key" }) }),
    },
    responses: {
      101: { description: 'Switching protocols: the socket is open' },
      ...errorResponses([401, 404, 409, 503], { 404: '`not_found`: no such session (or another tenant\'s)', 409: '`session_in_use`: the session already has a client' }),
    },
  });
}
