/**
 * The benchmarks' object store in a process of its own (forked by bench-support's
 * startLocalFarm), as S3 is in a real deployment, so that its CPU time per job is counted apart
 * from the benchmark's own: starts the embedded S3 on a fresh folder, sends the parent the
 * environment that points the farm at it, and on SIGTERM closes it and removes the folder.
 *
 * The folder is in memory where the machine has a tmpfs (/dev/shm), as the benchmark's Redis
 * keeps no files either: s3rver writes three files an object, and on this VM's ext4 each costs
 * about 0.5 ms of system CPU — the stand-in's disk, not the farm's work.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedS3 } from '@farm/farm';

async function main(): Promise<void> {
  const directory = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'farm-bench-'));
  const s3 = await EmbeddedS3.start({ directory, bucket: 'bench' });
  process.once('SIGTERM', async () => {
    await s3.close();
    rmSync(directory, { recursive: true, force: true });
    process.exit(0);
  });
  process.send!({ env: s3.env() });
}

main().catch((err) => {
  console.error(`bench S3: ${(err as Error).message}`);
  process.exit(1);
});
