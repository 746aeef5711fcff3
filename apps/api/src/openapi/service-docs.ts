/** The description of the routes beside the API proper: health, metrics, this document and its viewer. */
import { z } from 'zod';
import { healthSchema, livenessSchema } from '@farm/contracts';
import { ADMIN_SECURITY, DocContext, PUBLIC, errorResponses, json } from './responses';

/** In a security list: no credentials is also accepted. */
const PUBLIC_OPTION = [{}];

export function describeServiceRoutes({ registry }: DocContext): void {
  registry.registerPath({
    method: 'get',
    path: '/livez',
    operationId: 'getLiveness',
    tags: ['service'],
    summary: 'Liveness: the process answers (Redis and S3 are not asked)',
    security: PUBLIC,
    responses: { 200: json(livenessSchema, 'Alive') },
  });

  for (const [path, operationId, alias] of [
    ['/readyz', 'getReadiness', ''],
    ['/healthz', 'getHealth', ' (the older name of /readyz)'],
  ] as const) {
    registry.registerPath({
      method: 'get',
      path,
      operationId,
      tags: ['service'],
      summary: `Readiness: whether Redis and S3 answer${alias}`,
      security: PUBLIC,
      responses: { 200: json(healthSchema, 'Both answer'), 503: json(healthSchema, 'Redis or S3 does not answer') },
    });
  }

  registry.registerPath({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tags: ['service'],
    summary: 'Prometheus metrics (text exposition format): operator information',
    description: 'With ADMIN_API_KEY set, only with the admin key (the shipped Prometheus configuration sends it); without one (the `npm start` default), open.',
    security: [...ADMIN_SECURITY, ...PUBLIC_OPTION],
    responses: {
      200: { description: 'The metrics', content: { 'text/plain': { schema: z.string() } } },
      ...errorResponses([401], { 401: 'ADMIN_API_KEY is set and the request does not carry it (`unauthorized`)' }),
    },
  });

  registry.registerPath({
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApiDocument',
    tags: ['service'],
    summary: 'This document',
    security: PUBLIC,
    responses: { 200: { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: z.object({ openapi: z.string() }).loose() } } } },
  });

  registry.registerPath({
    method: 'get',
    path: '/docs',
    operationId: 'getDocs',
    tags: ['service'],
    summary: 'This document in Swagger UI',
    security: PUBLIC,
    responses: { 200: { description: 'A web page', content: { 'text/html': { schema: z.string() } } } },
  });

  registry.registerPath({
    method: 'get',
    path: '/docs/{asset}',
    operationId: 'getDocsAsset',
    tags: ['service'],
    summary: "Swagger UI's scripts, styles and images (from the swagger-ui-dist package)",
    security: PUBLIC,
    request: { params: z.object({ asset: z.string().meta({ example: 'swagger-ui.css' }) }) },
    responses: {
      200: {
        description: 'The file',
        content: Object.fromEntries(['text/css', 'text/javascript', 'application/javascript', 'image/png', 'text/html'].map((type) => [type, { schema: z.string() }])),
      },
      ...errorResponses([404], { 404: '`not_found`: no such file' }),
    },
  });
}
