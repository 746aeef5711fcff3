/**
 * infra/: deployment and monitoring configuration, checked as text. Parses every YAML file under
 * infra/ and the Grafana dashboard, checks the structural facts the farm relies on (services,
 * probes, shutdown grace, the KEDA query, dashboard queries naming real metrics), and, where
 * promtool is installed, runs `promtool check config|rules` and `promtool test rules`.
 * Imports nothing from the apps.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
const INFRA = path.join(ROOT, 'infra');

type Doc = any; // parsed YAML/JSON, checked structurally below

/** Multi-document YAML with merge keys (`<<: *anchor`, used by docker-compose.yml). */
function parseYamlDocuments(text: string, file: string): Doc[] {
  return parseAllDocuments(text, { merge: true }).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS({ maxAliasCount: -1 });
  });
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(full) : [full];
  });
}

const files = walk(INFRA);
const yamlFiles = files.filter((f) => /\.ya?ml$/.test(f));
const parsed = new Map<string, Doc[]>();
const rel = (f: string) => path.relative(INFRA, f).split(path.sep).join('/');
for (const f of yamlFiles) parsed.set(rel(f), parseYamlDocuments(readFileSync(f, 'utf8'), f).filter((d) => d != null));
const doc = (name: string): Doc => {
  const docs = parsed.get(name);
  if (!docs?.length) throw new Error(`infra/${name} missing or empty`);
  return docs[0];
};
const k8sObjects: Doc[] = [...parsed.entries()].filter(([name]) => name.startsWith('k8s/')).flatMap(([, docs]) => docs);

/** Metrics the apps export (histograms by base name; _bucket/_sum/_count are accepted). */
const APP_METRICS = new Set([
  // API
  'farm_jobs_submitted_total',
  'farm_jobs_rejected_total',
  'farm_http_request_duration_seconds',
  'farm_queue_jobs',
  'farm_sessions_open',
  'farm_session_frames_total',
  'farm_session_tiles_total',
  'farm_session_frame_bytes_total',
  'farm_session_frames_dropped_total',
  'farm_session_update_latency_seconds',
  'farm_session_updates_total',
  // Worker
  'farm_job_latency_seconds',
  'farm_job_queue_wait_seconds',
  'farm_job_compute_seconds',
  'farm_jobs_total',
  'farm_job_failures_total',
  'farm_images_total',
  'farm_denoise_steps_total',
  'farm_edit_sources_total',
  'farm_images_per_second',
  'farm_denoise_steps_per_second',
  'farm_jobs_in_flight',
  'farm_model_busy_seconds_total',
  'farm_unet_batch_size',
  'farm_stream_batch_lanes',
  'farm_sessions_hosted',
  'farm_session_renders_total',
  'farm_session_updates_superseded_total',
]);
const HISTOGRAMS = [
  'farm_http_request_duration_seconds',
  'farm_job_latency_seconds',
  'farm_job_queue_wait_seconds',
  'farm_job_compute_seconds',
  'farm_unet_batch_size',
  'farm_stream_batch_lanes',
  'farm_session_update_latency_seconds',
];

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan']);

/** Metric names a PromQL expression selects (strings, label matchers, ranges and grouping lists removed). */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  const token = /\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g;
  for (const m of stripped.matchAll(token)) {
    const [, ident, call] = m;
    if (!ident || call || PROMQL_WORDS.has(ident.toLowerCase())) continue;
    names.push(ident);
  }
  return names;
}

function baseMetric(name: string): string {
  for (const h of HISTOGRAMS) if (name === `${h}_bucket` || name === `${h}_sum` || name === `${h}_count`) return h;
  return name;
}

const rules = doc('prometheus/rules.yml');
const ruleList: Doc[] = rules.groups.flatMap((g: Doc) => g.rules);
const recordingRules = new Set<string>(ruleList.filter((r) => r.record).map((r) => r.record));

/** Names an expression uses that are neither exported by the apps nor recorded in rules.yml. */
function unknownNames(expr: string, extra: string[] = []): string[] {
  return metricNames(expr).filter((n) => !APP_METRICS.has(baseMetric(n)) && !recordingRules.has(n) && !extra.includes(n));
}

/** "40s", "1m30s", "2m" -> milliseconds. */
function durationMs(value: string): number {
  let total = 0;
  for (const [, n, unit] of String(value).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  }
  return total;
}

describe('infra YAML', () => {
  it('finds and parses every YAML file under infra/', () => {
    expect(yamlFiles.length).toBeGreaterThanOrEqual(10);
    for (const [name, docs] of parsed) expect({ name, empty: docs.length === 0 }).toEqual({ name, empty: false });
  });
});

describe('docker compose', () => {
  const compose = doc('docker-compose.yml');
  const services = compose.services;

  it('has the farm services', () => {
    for (const name of ['redis', 'minio', 'minio-init', 'api', 'worker-cpu', 'prometheus', 'grafana']) expect(Object.keys(services)).toContain(name);
  });

  it('runs Redis 7 with the append-only file on a volume', () => {
    const command = [services.redis.command].flat().join(' ');
    expect(services.redis.image).toMatch(/^redis:7/);
    expect(command).toMatch(/--appendonly\s+yes/);
    expect(services.redis.volumes.some((v: string) => String(v).endsWith(':/data'))).toBe(true);
  });

  it('wires the apps to Redis and MinIO, with presigned URLs for the host', () => {
    for (const name of ['api', 'worker-cpu']) {
      const env = services[name].environment;
      expect(env).toMatchObject({
        REDIS_URL: 'redis://redis:6379',
        S3_ENDPOINT: 'http://minio:9000',
        S3_PUBLIC_ENDPOINT: 'http://localhost:9000',
        S3_BUCKET: 'farm-results',
      });
      expect(env.S3_ACCESS_KEY_ID).toBe(services.minio.environment.MINIO_ROOT_USER);
      expect(env.S3_SECRET_ACCESS_KEY).toBe(services.minio.environment.MINIO_ROOT_PASSWORD);
      expect(services[name].depends_on['minio-init']).toEqual({ condition: 'service_completed_successfully' });
    }
    expect(services.api.build.dockerfile).toBe('infra/docker/Dockerfile.api');
    expect(services['worker-cpu'].build.dockerfile).toBe('infra/docker/Dockerfile.worker');
  });

  it('health-checks the API and the worker on /healthz', () => {
    expect(services.api.healthcheck.test.join(' ')).toContain(':8080/healthz');
    expect(services['worker-cpu'].healthcheck.test.join(' ')).toContain(':9464/healthz');
  });

  it('gives a stopping worker longer than SHUTDOWN_GRACE_MS, and lets it scale', () => {
    const worker = services['worker-cpu'];
    expect(durationMs(worker.stop_grace_period)).toBeGreaterThan(Number(worker.environment.SHUTDOWN_GRACE_MS));
    expect(worker.ports).toBeUndefined(); // a published host port would break --scale
    expect(worker.networks.default.aliases).toContain('worker');
  });

  it('mounts the Prometheus and Grafana configuration', () => {
    expect(services.prometheus.volumes).toContain('./prometheus:/etc/prometheus:ro');
    expect(services.grafana.volumes.some((v: string) => v.startsWith('./grafana/provisioning:'))).toBe(true);
    expect(services.grafana.volumes.some((v: string) => v.startsWith('./grafana/dashboards:'))).toBe(true);
  });
});

describe('Kubernetes manifests', () => {
  const deployments = k8sObjects.filter((o) => o.kind === 'Deployment');
  const byName = (name: string) => deployments.find((d) => d.metadata.name === name);

  it('has the API and worker Deployments, the Service, the ConfigMap and the ScaledObject, with no namespace', () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['farm-api', 'farm-worker']);
    expect(k8sObjects.map((o) => o.kind)).toEqual(expect.arrayContaining(['Service', 'ConfigMap', 'ScaledObject']));
    for (const o of k8sObjects) expect(o.metadata.namespace).toBeUndefined();
  });

  it('probes every Deployment container for readiness on /healthz', () => {
    for (const d of deployments) {
      expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
      for (const c of d.spec.template.spec.containers) {
        expect({ deployment: d.metadata.name, path: c.readinessProbe?.httpGet?.path }).toEqual({ deployment: d.metadata.name, path: '/healthz' });
      }
    }
  });

  it('runs 2 API replicas with liveness on /healthz', () => {
    const api = byName('farm-api');
    expect(api.spec.replicas).toBe(2);
    expect(api.spec.template.spec.containers[0].livenessProbe.httpGet.path).toBe('/healthz');
  });

  it('gives the worker a GPU, metrics port 9464 and a grace period longer than SHUTDOWN_GRACE_MS', () => {
    const spec = byName('farm-worker').spec.template.spec;
    const container = spec.containers[0];
    const env = Object.fromEntries(container.env.filter((e: Doc) => 'value' in e).map((e: Doc) => [e.name, e.value]));
    expect(container.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(env.EXECUTION_PROVIDER).toBe('cuda');
    expect(Number(env.SHUTDOWN_GRACE_MS)).toBeGreaterThan(0);
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(env.SHUTDOWN_GRACE_MS));
    const port = container.ports.find((p: Doc) => p.name === container.readinessProbe.httpGet.port || p.containerPort === container.readinessProbe.httpGet.port);
    expect(port.containerPort).toBe(9464);
    expect(byName('farm-worker').spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9464' });
  });

  it('scales the worker with KEDA on the API-reported queue depth, prioritized jobs included', () => {
    const scaled = k8sObjects.find((o) => o.kind === 'ScaledObject');
    expect(scaled.spec.scaleTargetRef.name).toBe('farm-worker');
    expect(scaled.spec.minReplicaCount).toBeLessThanOrEqual(scaled.spec.maxReplicaCount);
    const trigger = scaled.spec.triggers.find((t: Doc) => t.type === 'prometheus');
    expect(trigger.metadata.query).toContain('farm_queue_jobs');
    expect(trigger.metadata.query).toContain('prioritized');
    expect(trigger.metadata.query).toContain('app="api"');
    expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
    expect(unknownNames(trigger.metadata.query, ['vector'])).toEqual([]);
  });

  it('keeps the queue prefix a Redis Cluster hash tag', () => {
    const config = k8sObjects.find((o) => o.kind === 'ConfigMap');
    expect(config.data.QUEUE_PREFIX).toMatch(/^\{[^{}]+\}$/);
  });
});

describe('Prometheus', () => {
  it('scrapes the API and the workers and loads rules.yml', () => {
    const config = doc('prometheus/prometheus.yml');
    expect(config.rule_files).toEqual(['rules.yml']);
    const text = JSON.stringify(config.scrape_configs);
    expect(text).toContain('api:8080');
    expect(text).toContain('9464');
  });

  it('records latency quantiles, fleet FPS, queue depth and failures', () => {
    for (const kind of ['job_latency_seconds', 'job_queue_wait_seconds', 'job_compute_seconds']) {
      for (const q of ['p50', 'p95', 'p99']) expect(recordingRules).toContain(`farm:${kind}:${q}_5m`);
    }
    for (const name of ['farm:images_per_second:fleet_rate1m', 'farm:denoise_steps_per_second:fleet_rate1m', 'farm:queue_jobs:by_state', 'farm:job_failures:rate5m']) {
      expect(recordingRules).toContain(name);
    }
    const queue = ruleList.find((r) => r.record === 'farm:queue_jobs:by_state');
    expect(queue.expr).toContain('app="api"');
    expect(ruleList.filter((r) => r.alert).length).toBeGreaterThanOrEqual(2);
  });

  it('builds every rule from exported metrics or other recording rules', () => {
    for (const r of ruleList) expect({ rule: r.record ?? r.alert, unknown: unknownNames(r.expr, ['up', 'absent']) }).toEqual({ rule: r.record ?? r.alert, unknown: [] });
  });
});

describe('Grafana', () => {
  const dashboard = JSON.parse(readFileSync(path.join(INFRA, 'grafana/dashboards/farm.json'), 'utf8'));
  const panels: Doc[] = dashboard.panels.flatMap((p: Doc) => [p, ...(p.panels ?? [])]).filter((p: Doc) => p.type !== 'row');

  it('is a provisioned dashboard on the provisioned datasource', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBeTruthy();
    const datasource = doc('grafana/provisioning/datasources/prometheus.yml').datasources[0];
    expect(datasource.type).toBe('prometheus');
    const provider = doc('grafana/provisioning/dashboards/farm.yml').providers[0];
    expect(provider.type).toBe('file');
    for (const p of panels) expect({ panel: p.title, uid: p.datasource?.uid }).toEqual({ panel: p.title, uid: datasource.uid });
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
  });

  it('has the farm panels', () => {
    const titles = panels.map((p) => p.title.toLowerCase()).join('\n');
    for (const word of ['fps', 'queue wait', 'compute', 'total', 'queue depth', 'unet batch', 'in-flight', 'failures by reason', 'per worker', 'busy fraction']) {
      expect(titles).toContain(word);
    }
    expect(panels.find((p) => p.title === 'Per worker').type).toBe('table');
  });

  it('has the live-session panels: sessions open, frames/s, update → frame latency, tiles vs whole frames, updates skipped', () => {
    const exprs = panels.flatMap((p) => p.targets.map((t: Doc) => t.expr)).join('\n');
    for (const metric of ['farm_sessions_open', 'farm_session_frames_total', 'farm_session_update_latency_seconds_bucket', 'farm_session_tiles_total', 'farm_session_updates_superseded_total', 'farm_session_updates_total']) {
      expect(exprs).toContain(metric);
    }
  });

  it('queries only metrics the apps export or recording rules from rules.yml', () => {
    for (const p of panels) {
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets) {
        expect(metricNames(t.expr).length).toBeGreaterThan(0);
        expect({ panel: p.title, expr: t.expr, unknown: unknownNames(t.expr) }).toEqual({ panel: p.title, expr: t.expr, unknown: [] });
      }
    }
  });
});

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

describe('promtool', () => {
  const promtool = (...args: string[]) => {
    const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };
  const check = (...args: string[]) => {
    if (!hasPromtool) return; // not installed here: nothing to run
    const { status, output } = promtool(...args);
    expect({ args, status, output }).toEqual({ args, status: 0, output });
  };

  it('accepts prometheus.yml', () => check('check', 'config', 'infra/prometheus/prometheus.yml'));
  it('accepts rules.yml', () => check('check', 'rules', 'infra/prometheus/rules.yml'));
  it('passes the rule unit tests', () => check('test', 'rules', 'infra/prometheus/rules.test.yml'));
});
