// The compose stack's secrets, made once: on the first `docker compose up` this writes random
// keys into the `farm-keys` volume (one file each); later runs keep the files that exist, so the
// keys survive restarts. The API and the worker read them through *_FILE variables; SeaweedFS
// reads its identity from s3.json, Prometheus the admin key (the API's /metrics needs it) from
// prometheus-admin-key. Delete a file and run `up` again to rotate that key
// (infra/README.md, "Keys").
//   node bootstrap-keys.mjs <dir>
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node bootstrap-keys.mjs <dir>');
  process.exit(2);
}
/** The uid/gid of the images' `node` user, which reads the keys. */
const NODE_USER = 1000;
/** The uid/gid Prometheus runs as in its image (`nobody`). */
const PROMETHEUS_USER = 65534;
const token = (bytes) => randomBytes(bytes).toString('base64url');

const files = {
  'admin-api-key': () => `fk_admin_${token(24)}`,
  // One tenant to start with; add tenants with POST /admin/api-keys.
  'api-keys': () => `default:fk_${token(24)}`,
  'webhook-secret': () => token(32),
  's3-access-key-id': () => `farm${token(9)}`,
  's3-secret-access-key': () => token(30),
};

mkdirSync(dir, { recursive: true });
const written = [];
for (const [name, make] of Object.entries(files)) {
  const file = path.join(dir, name);
  if (existsSync(file)) continue;
  writeFileSync(file, `${make()}\n`, { mode: 0o400 });
  written.push(name);
}
// SeaweedFS's S3 identity, from the two S3 files (rewritten whenever they change).
const read = (name) => readFileSync(path.join(dir, name), 'utf8').trim();
const s3 = {
  identities: [
    { name: 'farm', credentials: [{ accessKey: read('s3-access-key-id'), secretKey: read('s3-secret-access-key') }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] },
  ],
};
rmSync(path.join(dir, 's3.json'), { force: true });
writeFileSync(path.join(dir, 's3.json'), JSON.stringify(s3, null, 2), { mode: 0o400 });
// Prometheus' copy of the admin key, readable by its user (rewritten too: it follows a rotation).
rmSync(path.join(dir, 'prometheus-admin-key'), { force: true });
writeFileSync(path.join(dir, 'prometheus-admin-key'), `${read('admin-api-key')}\n`, { mode: 0o400 });
if (process.getuid?.() === 0) {
  for (const name of [...Object.keys(files), 's3.json']) chownSync(path.join(dir, name), NODE_USER, NODE_USER);
  chownSync(path.join(dir, 'prometheus-admin-key'), PROMETHEUS_USER, PROMETHEUS_USER);
}
console.log(written.length > 0 ? `keys: created ${written.join(', ')}` : 'keys: kept the existing ones');
