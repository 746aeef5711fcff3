/** The worker's small HTTP face: GET /metrics (Prometheus) and GET /healthz. */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { listen } from '@farm/platform';

export function startStatusServer(
  port: number,
  registry: Registry,
  healthy: () => Promise<Record<string, boolean>>,
): Promise<http.Server> {
  const server = http.createServer(async (req, res) => {
    try {
      if (req.method === 'GET' && req.url === '/metrics') {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(await registry.metrics());
      } else if (req.method === 'GET' && req.url === '/healthz') {
        const checks = await healthy();
        const ok = Object.values(checks).every(Boolean);
        res.writeHead(ok ? 200 : 503, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...checks }));
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'not_found', message: `no route for ${req.method} ${req.url}` } }));
      }
    } catch (err) {
      res.writeHead(500, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'internal_error', message: (err as Error).message } }));
    }
  });
  return listen(server, port, undefined, 'WORKER_METRICS_PORT').then(() => server);
}
