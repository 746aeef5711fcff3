/**
 * Starts the real services the suite talks to: a real S3 API server (s3rver, in this process)
 * and checks the real Redis. Test files read TEST_S3_* and REDIS_URL from the environment.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedS3 } from '../../apps/farm/src/embedded-s3';
import { checkRedis } from '../../packages/platform/src/redis-connection';
import { CHROMIUM } from './browser';

declare global {
  // eslint-disable-next-line no-var
  var __FARM_S3__: EmbeddedS3 | undefined;
  // eslint-disable-next-line no-var
  var __FARM_S3_DIR__: string | undefined;
}

export default async function globalSetup(): Promise<void> {
  process.env.REDIS_URL ??= 'redis://127.0.0.1:6379';
  await checkRedis(process.env.REDIS_URL);
  const directory = mkdtempSync(path.join(os.tmpdir(), 'farm-test-s3-data-')); // not farm-s3-*: those are the servers' socket folders
  const s3 = await EmbeddedS3.start({ directory, bucket: 'farm-test' });
  globalThis.__FARM_S3__ = s3;
  globalThis.__FARM_S3_DIR__ = directory;
  Object.assign(process.env, s3.env());
  process.env.FARM_TEST_RUN = `t${Date.now().toString(36)}`;
  if (!existsSync(CHROMIUM)) console.log(`\nbrowser tests skipped: ${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`);
}
