/**
 * `npm run check:readme`: the README as a newcomer follows it. Clones this repository into a
 * temporary folder, runs its Quick start as written (`npm ci && npm start`, in the background), then
 * every command of the Quick start's and the command line's shell blocks as written, in the clone,
 * with only the placeholders filled in (`<id>`, `<jobId>`: a job the walk submitted; `<result.url>`:
 * its image; `regions.json`, `photo.png`, `mask.png`: small files it makes). Prints each command
 * with its exit status and exits non-zero if any failed. Needs ports 8080 and 9000 free, as the
 * README does; minutes, not seconds (a fresh install and build), so it is not part of `npm test`.
 */
import { ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { createRedis } from '@farm/platform';

const ROOT = path.resolve(__dirname, '../../..');
/** Where the README's farm answers, for the walk's own requests. */
const BASE = 'http://127.0.0.1:8080';

/** The commands of the README's shell block that follows `heading`, continuation lines joined. */
function shellCommands(readme: string, heading: string, nth = 0): string[] {
  const section = readme.slice(readme.indexOf(heading));
  const block = [...section.matchAll(/```sh\n([\s\S]*?)```/g)][nth][1];
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'));
}

async function until<T>(what: string, probe: () => Promise<T | null>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const clone = path.join(mkdtempSync(path.join(os.tmpdir(), 'farm-readme-')), 'diffusion-farm');
  execFileSync('git', ['clone', '--quiet', ROOT, clone]);
  const readme = readFileSync(path.join(clone, 'README.md'), 'utf8');
  const results: Array<{ command: string; status: number }> = [];
  // Asynchronously: a blocked event loop would leave this process' idle HTTP connections stale.
  const run = (command: string, env: NodeJS.ProcessEnv = {}) =>
    new Promise<string>((resolve) => {
      execFile('bash', ['-c', command], { cwd: clone, env: { ...process.env, ...env }, timeout: 600_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        results.push({ command, status });
        console.log(`${status === 0 ? 'ok  ' : 'FAIL'} (${status}) ${command}${status === 0 ? '' : `\n${stderr.trim().split('\n').slice(-3).join('\n')}`}`);
        resolve(stdout);
      });
    });

  // Quick start, first block: `npm ci && npm start` — the farm keeps running in the background.
  const [install] = shellCommands(readme, '## Quick start');
  console.log(`running: ${install} (in the background)`);
  const farmLog = path.join(path.dirname(clone), 'npm-start.log');
  // A queue of its own (the environment, not the commands), so a farm running beside it is left alone.
  const queueName = `readme-${Date.now().toString(36)}`;
  const farm: ChildProcess = spawn('bash', ['-c', `${install.replace(/\s+#.*$/, '')} > ${farmLog} 2>&1`], {
    cwd: clone,
    env: { ...process.env, QUEUE_NAME: queueName },
    stdio: 'ignore',
    detached: true,
  });
  try {
    await until('the farm answering on :8080', async () => ((await fetch(`${BASE}/readyz`)).ok ? true : null), 600_000);
    results.push({ command: install, status: 0 });
    const key = readFileSync(path.join(clone, '.farm-data/dev-api-key'), 'utf8').trim();
    const env = { FARM_API_KEY: key };
    const api = (p: string, init: RequestInit = {}) => fetch(`${BASE}${p}`, { ...init, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' } });

    // Quick start, second block: the POST's job fills in <id> and <result.url>.
    let id = '';
    let url = '';
    for (const command of shellCommands(readme, 'Then, from another shell:')) {
      if (command.startsWith('export ')) continue; // its value is `env`
      const filled = command.replaceAll('<id>', id).replaceAll('<result.url>', url);
      const out = await run(filled, env);
      if (!id && command.includes('-X POST')) {
        id = JSON.parse(out).id;
        url = await until('the job finishing', async () => ((await (await api(`/v1/jobs/${id}`)).json()) as { result?: { url: string } }).result?.url ?? null, 120_000);
      }
    }

    // The command line's block, with the files it names.
    writeFileSync(path.join(clone, 'regions.json'), JSON.stringify([{ prompt: 'a red circle', mask: { rects: [[32, 32, 96, 96]] } }]));
    writeFileSync(path.join(clone, 'photo.png'), readFileSync(path.join(clone, 'image.png')));
    const square = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#fff' } }).png().toBuffer();
    await sharp({ create: { width: 256, height: 256, channels: 3, background: '#000' } }).composite([{ input: square, left: 96, top: 96 }]).png().toFile(path.join(clone, 'mask.png'));
    for (const command of shellCommands(readme, '## Command line and TypeScript client')) {
      if (command.startsWith('export ')) continue;
      let jobId = id;
      if (command.startsWith('npx farm cancel')) {
        // A job that is still queued or running, so there is something to cancel.
        jobId = ((await (await api('/v1/jobs', { method: 'POST', body: JSON.stringify({ type: 'generate', prompt: 'a blue background', steps: 50 }) })).json()) as { id: string }).id;
      }
      await run(command.replaceAll('<jobId>', jobId), env);
    }
  } catch (err) {
    console.error(`readme: the farm said:\n${readFileSync(farmLog, 'utf8').split('\n').slice(-15).join('\n')}`);
    throw err;
  } finally {
    if (farm.pid) process.kill(-farm.pid, 'SIGTERM');
    await new Promise((r) => farm.once('exit', r));
    rmSync(path.dirname(clone), { recursive: true, force: true });
    const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    const keys = await redis.keys(`{farm}:${queueName}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
  const failed = results.filter((r) => r.status !== 0);
  console.log(`readme: ${results.length - failed.length} commands ran as written, ${failed.length} failed`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

main().catch((err) => {
  console.error(`readme: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
});
