/**
 * The embedded S3's private folders for its backend's Unix socket (`farm-s3-*` in the temporary
 * folder, 0700): one made fresh for each server, removed when it closes. A server that died
 * without closing (SIGKILL, a crash) leaves its folder behind; the next server to start removes
 * every such folder of this user — one whose socket refuses connections. A folder without a
 * socket yet (a server starting) and another user's folder are left alone.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'farm-s3-';
const SOCKET = 's3.sock';

/** Whether nothing listens on the Unix socket at `socketPath` any more (a missing file is not dead: its server may be starting). */
function deadSocket(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/** Removes the folders this user's dead servers left in the temporary folder; resolves with their paths. */
export async function removeDeadSocketFolders(): Promise<string[]> {
  const uid = process.getuid?.();
  const removed: string[] = [];
  for (const name of readdirSync(os.tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const folder = path.join(os.tmpdir(), name);
    try {
      if (uid !== undefined && statSync(folder).uid !== uid) continue;
      if (!(await deadSocket(path.join(folder, SOCKET)))) continue;
      rmSync(folder, { recursive: true, force: true });
      removed.push(folder);
    } catch {
      // Gone meanwhile, or not ours to read: nothing to clean.
    }
  }
  return removed;
}

/** A fresh private folder for a server's socket; `socketPath` is where it listens. */
export function makeSocketFolder(): { folder: string; socketPath: string } {
  const folder = mkdtempSync(path.join(os.tmpdir(), PREFIX)); // 0700: only this user
  return { folder, socketPath: path.join(folder, SOCKET) };
}
