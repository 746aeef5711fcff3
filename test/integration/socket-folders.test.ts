/**
 * The embedded S3's socket folders (socket-folders.ts), with real servers: one killed with SIGKILL
 * leaves its folder behind, and the next embedded S3 to start removes it; a live server's folder
 * (the suite's own S3), a starting server's (no socket yet) and another user's are left alone.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedS3, makeSocketFolder, removeDeadSocketFolders } from '@farm/farm';
import { scratchDir } from '../support/scratch-dir';

const EMBEDDED_S3 = path.resolve(__dirname, '../../apps/farm/dist/embedded-s3.js');

const socketFolders = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith('farm-s3-')).map((n) => path.join(os.tmpdir(), n));

const answers = (socketPath: string) =>
  new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath, () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });

/** Starts an embedded S3 in a process of its own, kills it with SIGKILL, and returns the socket folder it left. */
async function killedServersFolder(): Promise<string> {
  const before = new Set(socketFolders());
  const directory = scratchDir('socket-folders-data-');
  const program = `require(${JSON.stringify(EMBEDDED_S3)}).EmbeddedS3.start({ directory: ${JSON.stringify(directory)}, bucket: 'killed' }).then(() => console.log('ready'))`;
  const child = spawn(process.execPath, ['-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`the embedded S3 exited (${code}) before it listened`)));
  });
  const made = socketFolders().filter((f) => !before.has(f));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  // Its folder is the new one whose socket now refuses (should another process have made one meanwhile).
  const refusing = await Promise.all(made.map(async (f) => existsSync(path.join(f, 's3.sock')) && !(await answers(path.join(f, 's3.sock')))));
  return made[refusing.indexOf(true)];
}

it("removes the folder a SIGKILLed embedded S3 left when the next one starts, and no live, starting or other user's folder", async () => {
  const dead = await killedServersFolder();
  expect(existsSync(path.join(dead, 's3.sock'))).toBe(true); // left behind
  expect(await answers(path.join(dead, 's3.sock'))).toBe(false);
  const starting = makeSocketFolder(); // a server between making its folder and listening
  const others = socketFolders().filter((f) => f !== dead && f !== starting.folder);
  const live = (await Promise.all(others.map(async (f) => ((await answers(path.join(f, 's3.sock'))) ? [f] : [])))).flat();
  expect(live.length).toBeGreaterThan(0); // at least the suite's own S3

  // Another user's folder is theirs to clean (root can give it away to see that).
  const root = process.getuid?.() === 0;
  if (root) {
    chownSync(dead, 65534, 65534);
    expect(await removeDeadSocketFolders()).not.toContain(dead);
    expect(existsSync(dead)).toBe(true);
    chownSync(dead, 0, 0);
  }

  const next = await EmbeddedS3.start({ directory: scratchDir('socket-folders-next-'), bucket: 'next' });
  try {
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(starting.folder)).toBe(true);
    for (const folder of live) expect(await answers(path.join(folder, 's3.sock'))).toBe(true);
  } finally {
    await next.close();
    rmSync(starting.folder, { recursive: true, force: true });
  }
}, 60000);
