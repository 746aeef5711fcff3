/**
 * infra/: deployment and monitoring configuration. Parses every YAML file under infra/ and the
 * Grafana dashboard; validates the compose file with dclint (the compose-spec schema) and every
 * Kubernetes object against its API schema (kubernetes-models); checks the structural facts the
 * farm relies on (keys, probes, shutdown grace, pinned images, the KEDA query, dashboard queries
 * naming real metrics); runs the compose key bootstrap; runs `promtool check config|rules` and
 * `promtool test rules`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, stringify } from 'yaml';
import { apiEnv, loadConfig, webhookEnv } from '@farm/platform';
import { scratchDir } from '../support/scratch-dir';

const run = promisify(execFile);

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
  'farm_jobs_in_flight',
  'farm_model_busy_seconds_total',
  'farm_model_call_seconds_total',
  'farm_unet_batch_size',
  'farm_stream_batch_lanes',
  'farm_sessions_hosted',
  'farm_session_renders_total',
  'farm_session_updates_superseded_total',
  'farm_session_frame_seconds',
  'farm_session_frame_recomputed_ratio',
]);
const HISTOGRAMS = [
  'farm_http_request_duration_seconds',
  'farm_job_latency_seconds',
  'farm_job_queue_wait_seconds',
  'farm_job_compute_seconds',
  'farm_unet_batch_size',
  'farm_stream_batch_lanes',
  'farm_session_update_latency_seconds',
  'farm_session_frame_seconds',
  'farm_session_frame_recomputed_ratio',
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

  it('passes dclint (the compose-spec schema and its error rules)', async () => {
    const { stdout } = await run(process.execPath, [path.join(ROOT, 'node_modules/dclint/bin/dclint.cjs'), '-q', '-f', 'json', 'infra/docker-compose.yml'], { cwd: ROOT }).catch((err) => err);
    expect(JSON.parse(stdout).flatMap((f: Doc) => f.messages)).toEqual([]);
  });

  it('has the farm services, on pinned images', () => {
    for (const name of ['keys', 'redis', 's3', 'api', 'worker-cpu', 'prometheus', 'grafana']) expect(Object.keys(services)).toContain(name);
    for (const [name, service] of Object.entries<Doc>(services)) {
      if (service.image) expect({ name, image: service.image }).toEqual({ name, image: expect.stringMatching(/^[\w./-]+:v?\d+(\.\d+)+(-[\w.]+)?$/) });
    }
  });

  it('runs Redis with the append-only file on a volume, and never evicts keys', () => {
    const command = [services.redis.command].flat().join(' ');
    expect(command).toMatch(/--appendonly\s+yes/);
    expect(command).toMatch(/--maxmemory-policy\s+noeviction/);
    expect(services.redis.volumes.some((v: string) => String(v).endsWith(':/data'))).toBe(true);
  });

  it('makes the keys once and hands them to the apps as files, S3 credentials included', () => {
    expect(services.keys.command).toEqual(['node', '/bootstrap-keys.mjs', '/keys']);
    for (const name of ['s3', 'api', 'worker-cpu']) {
      expect(services[name].depends_on.keys).toEqual({ condition: 'service_completed_successfully' });
      expect(services[name].volumes).toContain('farm-keys:/keys:ro');
    }
    expect(services.api.environment).toMatchObject({ API_KEYS_FILE: '/keys/api-keys', ADMIN_API_KEY_FILE: '/keys/admin-api-key', WEBHOOK_SECRET_FILE: '/keys/webhook-secret' });
    expect(services.s3.command).toContain('-s3.config=/keys/s3.json');
    const env = JSON.stringify([services.api.environment, services['worker-cpu'].environment]);
    expect(env).not.toMatch(/SECRET_ACCESS_KEY"|ADMIN_API_KEY"|API_KEYS"/); // no key in the file itself
  });

  it('wires the apps to Redis and S3, with presigned URLs for the host', () => {
    for (const name of ['api', 'worker-cpu']) {
      expect(services[name].environment).toMatchObject({
        REDIS_URL: 'redis://redis:6379',
        S3_ENDPOINT: 'http://s3:8333',
        S3_PUBLIC_ENDPOINT: 'http://localhost:8333',
        S3_ACCESS_KEY_ID_FILE: '/keys/s3-access-key-id',
        S3_SECRET_ACCESS_KEY_FILE: '/keys/s3-secret-access-key',
      });
      expect(services[name].depends_on.s3).toEqual({ condition: 'service_healthy' });
    }
    expect(services.api.build.dockerfile).toBe('infra/docker/Dockerfile.api');
    expect(services['worker-cpu'].build.dockerfile).toBe('infra/docker/Dockerfile.worker');
  });

  it('health-checks the API and the worker on liveness (/livez), not on Redis or S3', () => {
    expect(services.api.healthcheck.test.join(' ')).toContain(':8080/livez');
    expect(services['worker-cpu'].healthcheck.test.join(' ')).toContain(':9464/livez');
  });

  it('gives a stopping worker longer than SHUTDOWN_GRACE_MS, and lets it scale', () => {
    const worker = services['worker-cpu'];
    expect(durationMs(worker.stop_grace_period)).toBeGreaterThan(Number(worker.environment.SHUTDOWN_GRACE_MS));
    expect(worker.ports).toBeUndefined(); // a published host port would break --scale
    expect(worker.networks.default.aliases).toContain('worker');
  });

  it('mounts the Prometheus and Grafana configuration, and Prometheus the key it scrapes the API with', () => {
    expect(services.prometheus.volumes).toContain('./prometheus:/etc/prometheus:ro');
    expect(services.prometheus.volumes).toContain('farm-keys:/keys:ro');
    expect(services.prometheus.depends_on.keys).toEqual({ condition: 'service_completed_successfully' });
    expect(services.grafana.volumes.some((v: string) => v.startsWith('./grafana/provisioning:'))).toBe(true);
    expect(services.grafana.volumes.some((v: string) => v.startsWith('./grafana/dashboards:'))).toBe(true);
  });
});

describe('compose key bootstrap (infra/compose/bootstrap-keys.mjs)', () => {
  const script = path.join(INFRA, 'compose/bootstrap-keys.mjs');
  const dir = path.join(scratchDir('farm-keys-'), 'keys');
  const read = (name: string) => readFileSync(path.join(dir, name), 'utf8').trim();

  it('writes random keys the apps accept, keeps them on the next run, and remakes one that was deleted (rotation)', async () => {
    expect((await run(process.execPath, [script, dir])).stdout).toMatch(/^keys: created admin-api-key, api-keys, webhook-secret, s3-access-key-id, s3-secret-access-key/);
    const env = { ADMIN_API_KEY_FILE: path.join(dir, 'admin-api-key'), API_KEYS_FILE: path.join(dir, 'api-keys'), WEBHOOK_SECRET_FILE: path.join(dir, 'webhook-secret') };
    const config = loadConfig({ ...apiEnv, ...webhookEnv }, env);
    expect(config.API_KEYS).toEqual([{ tenant: 'default', key: expect.stringMatching(/^fk_[\w-]{32}$/) }]);
    expect(JSON.parse(read('s3.json')).identities[0].credentials).toEqual([{ accessKey: read('s3-access-key-id'), secretKey: read('s3-secret-access-key') }]);
    expect(statSync(path.join(dir, 'admin-api-key')).mode & 0o777).toBe(0o400);

    const before = { admin: read('admin-api-key'), webhook: read('webhook-secret') };
    expect((await run(process.execPath, [script, dir])).stdout).toMatch(/kept the existing ones/);
    expect({ admin: read('admin-api-key'), webhook: read('webhook-secret') }).toEqual(before);
    rmSync(path.join(dir, 'admin-api-key'));
    expect((await run(process.execPath, [script, dir])).stdout).toMatch(/created admin-api-key$/m);
    expect(read('admin-api-key')).not.toBe(before.admin);
    expect(read('webhook-secret')).toBe(before.webhook);
    // Prometheus' copy of the admin key (the API's /metrics needs it) follows the rotation.
    expect(read('prometheus-admin-key')).toBe(read('admin-api-key'));
  });
});

describe('Kubernetes manifests', () => {
  const deployments = k8sObjects.filter((o) => o.kind === 'Deployment');
  const byName = (name: string) => deployments.find((d) => d.metadata.name === name);
  const container = (name: string) => byName(name).spec.template.spec.containers[0];
  const validate = async (files: string[]) => JSON.parse((await run(process.execPath, [path.join(ROOT, 'test/support/validate-k8s.mjs'), ...files], { cwd: ROOT })).stdout);

  it('validates every object against its Kubernetes (or KEDA) API schema (kubernetes-models)', async () => {
    expect(k8sObjects.length).toBeGreaterThanOrEqual(9);
    expect(await validate(yamlFiles.filter((f) => rel(f).startsWith('k8s/')))).toEqual([]);
    // The validator does catch a wrong object.
    const wrong = path.join(scratchDir('farm-k8s-'), 'wrong.yaml');
    writeFileSync(wrong, stringify({ ...byName('farm-api'), spec: { ...byName('farm-api').spec, replicas: 'two' } }));
    expect(await validate([wrong])).toEqual([expect.objectContaining({ kind: 'Deployment', problem: expect.stringMatching(/replicas must be integer/) })]);
  });

  it('has the API and worker Deployments, the Service, the ConfigMap, the key bootstrap and the ScaledObject, with no namespace', () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['farm-api', 'farm-worker']);
    expect(k8sObjects.map((o) => o.kind)).toEqual(expect.arrayContaining(['Service', 'ConfigMap', 'ScaledObject', 'Job', 'Role', 'RoleBinding', 'ServiceAccount']));
    for (const o of k8sObjects) expect(o.metadata.namespace).toBeUndefined();
  });

  it('makes the farm-keys Secret once (create only, kept when it exists) and gives it to both Deployments', () => {
    const job = k8sObjects.find((o) => o.kind === 'Job' && o.metadata.name === 'farm-keys-bootstrap');
    const script = job.spec.template.spec.containers[0].args.join('\n');
    for (const key of ['ADMIN_API_KEY', 'API_KEYS', 'WEBHOOK_SECRET']) expect(script).toContain(`"${key}"`);
    expect(script).toMatch(/409\) echo 'farm-keys: exists, kept'/);
    const role = k8sObjects.find((o) => o.kind === 'Role');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
    for (const name of ['farm-api', 'farm-worker']) {
      expect(container(name).envFrom).toEqual(expect.arrayContaining([{ secretRef: { name: 'farm-keys' } }, { secretRef: { name: 'farm-s3', optional: true } }]));
    }
  });

  it('runs pinned images', () => {
    const images = k8sObjects.flatMap((o) => o.spec?.template?.spec?.containers ?? []).map((c: Doc) => c.image);
    for (const image of images) expect(image).toMatch(/:v?\d+(\.\d+)+$/);
  });

  it('probes liveness (/livez) apart from readiness (/readyz): a Redis or S3 outage restarts nothing', () => {
    for (const d of deployments) {
      expect(d.spec.template.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
      const c = d.spec.template.spec.containers[0];
      expect({ deployment: d.metadata.name, readiness: c.readinessProbe.httpGet.path, liveness: c.livenessProbe.httpGet.path }).toEqual({
        deployment: d.metadata.name,
        readiness: '/readyz',
        liveness: '/livez',
      });
    }
    expect(container('farm-worker').startupProbe.httpGet.path).toBe('/livez');
    expect(byName('farm-api').spec.replicas).toBe(2);
  });

  it('gives the worker a GPU, metrics port 9464 and a grace period longer than SHUTDOWN_GRACE_MS', () => {
    const spec = byName('farm-worker').spec.template.spec;
    const worker = spec.containers[0];
    const env = Object.fromEntries(worker.env.filter((e: Doc) => 'value' in e).map((e: Doc) => [e.name, e.value]));
    expect(worker.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(env.EXECUTION_PROVIDER).toBe('cuda');
    expect(Number(env.SHUTDOWN_GRACE_MS)).toBeGreaterThan(0);
    expect(spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(env.SHUTDOWN_GRACE_MS));
    const port = worker.ports.find((p: Doc) => p.name === worker.readinessProbe.httpGet.port || p.containerPort === worker.readinessProbe.httpGet.port);
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

  it('scrapes the API with the admin key, from the file the compose key bootstrap writes', () => {
    const api = doc('prometheus/prometheus.yml').scrape_configs.find((c: Doc) => c.job_name === 'farm-api');
    expect(api.authorization).toEqual({ type: 'Bearer', credentials_file: '/keys/prometheus-admin-key' });
    expect(readFileSync(path.join(INFRA, 'compose/bootstrap-keys.mjs'), 'utf8')).toContain("'prometheus-admin-key'");
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

  it('queries only metrics the apps export, so it works whether or not the recording rules are loaded', () => {
    for (const p of panels) {
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets) {
        const names = metricNames(t.expr);
        expect(names.length).toBeGreaterThan(0);
        expect({ panel: p.title, expr: t.expr, notExported: names.filter((n) => !APP_METRICS.has(baseMetric(n))) }).toEqual({ panel: p.title, expr: t.expr, notExported: [] });
      }
    }
  });

  it('has model and worker variables, and every worker panel filters on both', () => {
    const variables = dashboard.templating.list;
    expect(variables.map((v: Doc) => [v.name, v.type, v.multi, v.includeAll])).toEqual([
      ['model', 'query', true, true],
      ['worker', 'query', true, true],
    ]);
    expect(variables[1].definition).toContain('model=~"$model"');
    for (const p of panels) {
      for (const t of p.targets) {
        const selectors = [...t.expr.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]);
        for (const selector of selectors) {
          if (selector.includes('app="worker"')) expect({ panel: p.title, selector }).toEqual({ panel: p.title, selector: expect.stringMatching(/model=~"\$model".*worker=~"\$worker"/) });
          if (selector.includes('app="api"')) expect({ panel: p.title, selector }).toEqual({ panel: p.title, selector: expect.stringContaining('model=~"$model"') });
        }
      }
    }
  });
});

describe('promtool', () => {
  const promtool = (...args: string[]) => {
    const result = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };
  const check = (...args: string[]) => {
    const { status, output } = promtool(...args); // .ci/run installs it (Debian's prometheus)
    expect({ args, status, output }).toEqual({ args, status: 0, output });
  };

  // Syntax only: the key file it names exists in the compose stack, not here (checked above).
  it('accepts prometheus.yml', () => check('check', 'config', '--syntax-only', 'infra/prometheus/prometheus.yml'));
  it('accepts rules.yml', () => check('check', 'rules', 'infra/prometheus/rules.yml'));
  it('passes the rule unit tests', () => check('test', 'rules', 'infra/prometheus/rules.test.yml'));
});
