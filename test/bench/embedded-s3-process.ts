/**
 * The benchmarks' object store in a process of its own (forked by bench-support's
 * startLocalFarm), as S3 is in a real deployment, so that its CPU time per job is counted apart
 * from the benchmark's own: starts the embedded S3 on a fresh folder, sends the parent the
 * environment that points the farm at it, and on SIGTERM closes it and removes the folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedS3 } from '@farm/farm';

async function main(): Promise<void> {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'farm-bench-'));
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
