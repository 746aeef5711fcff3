import { rmSync } from 'node:fs';

/** Stops the suite's S3 server and removes its data. */
export default async function globalTeardown(): Promise<void> {
  await globalThis.__FARM_S3__?.close();
  if (globalThis.__FARM_S3_DIR__) rmSync(globalThis.__FARM_S3_DIR__, { recursive: true, force: true });
}
