/**
 * A newcomer's first steps: a fresh `git clone` of this repository, `npm ci`, then the README's
 * `npx farm generate …` line exactly as written, against a real farm (API + in-process worker).
 * npx runs offline here, so it must find the workspace's own `farm` bin: it can never fall back
 * to an unrelated registry package of that name.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { Harness, TestApi } from '../support/harness';

const ROOT = path.resolve(__dirname, '../..');

/** The first line of the README's shell blocks that starts with `prefix`. */
function readmeLine(prefix: string): string {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const lines = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1].split('\n'));
  const line = lines.find((l) => l.startsWith(prefix));
  if (!line) throw new Error(`the README shows no command starting with ${prefix}`);
  return line;
}

let farm: Harness;
let api: TestApi;
let clone: string;

beforeAll(async () => {
  farm = new Harness();
  api = await farm.startApi();
  await farm.startWorker();
  clone = path.join(mkdtempSync(path.join(os.tmpdir(), 'farm-clone-')), 'diffusion-farm');
  execFileSync('git', ['clone', '--quiet', ROOT, clone]);
  // The packages come from npm's cache when it has them (CI's own `npm ci` just filled it).
  execFileSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, stdio: 'ignore' });
}, 180_000);

afterAll(async () => {
  await farm.close();
  rmSync(path.dirname(clone), { recursive: true, force: true });
});

it('links the `farm` bin at install time, before anything is built', () => {
  const bin = path.join(clone, 'node_modules/.bin/farm');
  expect(realpathSync(bin)).toBe(path.join(clone, 'apps/cli/bin/farm.js'));
});

it("runs the README's `npx farm generate` line as written: compiles the CLI on first use, renders, writes the file", async () => {
  const line = readmeLine('npx farm generate ');
  const output = /-o (\S+)/.exec(line)![1];
  expect((await api.fetch('/v1/workers')).status).toBe(200); // the key works
  // Asynchronously: the API and the worker answering it run in this process.
  const { stdout, stderr } = await promisify(execFile)('bash', ['-c', line], {
    cwd: clone,
    // Offline: were the bin missing, npx could only fail, never fetch a stranger's `farm`.
    env: { ...process.env, FARM_API_URL: api.base, FARM_API_KEY: api.key!, npm_config_offline: 'true' },
  });
  expect(stderr).toContain('farm: compiling the command line (first run in this checkout)');
  expect(JSON.parse(stdout)).toMatchObject({ status: 'succeeded', output: path.join(clone, output) });
  const [, width, height] = /--width (\d+) --height (\d+)/.exec(line)!.map(Number);
  expect(await sharp(readFileSync(path.join(clone, output))).metadata()).toMatchObject({ width, height });
}, 150_000);
