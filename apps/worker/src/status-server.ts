/**
 * The worker's small HTTP face: GET /metrics (Prometheus), GET /livez (the process answers and
 * its engine loop is not stuck: a failure means restart it) and GET /readyz (Redis and S3 answer:
 * a failure means wait; /healthz is its older name).
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { listen } from '@farm/platform';
import type { EngineStatus } from './engine-liveness';

export interface StatusProbes {
  live(): EngineStatus;
  ready(): Promise<Record<string, boolean>>;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function startStatusServer(port: number, registry: Registry, probes: StatusProbes): Promise<http.Server> {
  const server = http.createServer(async (req, res) => {
    try {
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(await registry.metrics());
      } else if (req.method === 'GET' && req.url === '/livez') {
        const engine = probes.live();
        json(res, engine.alive ? 200 : 503, { status: engine.alive ? 'ok' : 'stalled', engine });
      } else if (req.method === 'GET' && (req.url === '/readyz' || req.url === '/healthz')) {
        const checks = await probes.ready();
        const ok = Object.values(checks).every(Boolean);
        json(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', ...checks });
      } else {
        json(res, 404, { error: { code: 'not_found', message: `no route for ${req.method} ${req.url}` } });
      }
    } catch (err) {
      json(res, 500, { error: { code: 'internal_error', message: (err as Error).message } });
    }
  });
  return listen(server, port, undefined, 'WORKER_METRICS_PORT').then(() => server);
}
