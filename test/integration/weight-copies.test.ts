/**
 * The int8 weight-only copy of the bundled model, written into a temporary folder as the weights
 * tool writes it, served by an ordinary worker: the same job through the farm's HTTP API renders
 * within the 30 dB PSNR goal of the fp32 model's image.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyModelFolder } from '@farm/model-tools';
import { psnr } from '@farm/weights';
import { decodeRgb } from '../support/colour-judge';
import { Harness, MODEL_DIR, TestApi, download, postJob, useFarm, waitForJob } from '../support/harness';

let farm: Harness;
let api: TestApi;
useFarm(async (f, a) => {
  farm = f;
  api = a;
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'shapes-int8-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function render(body: Record<string, unknown>): Promise<Buffer> {
  const submitted = await postJob(api, body);
  expect(submitted.status).toBe(202);
  const job = await waitForJob(api, submitted.body.id);
  expect(job).toMatchObject({ status: 'succeeded' });
  return (await decodeRgb(await download(job.result.url))).data;
}

it('a worker serves the int8 copy unchanged, within 30 dB of the fp32 model at the same seed', async () => {
  const copied = copyModelFolder(MODEL_DIR, dir, 'int8');
  const before = copied.reduce((n, c) => n + c.bytesBefore, 0);
  const after = copied.reduce((n, c) => n + c.bytesAfter, 0);
  expect(before / after).toBeGreaterThan(3.5);

  const job = { type: 'generate', prompt: 'a red circle and a blue square on a yellow background', width: 128, height: 128, seed: 7 };
  const fp32Worker = await farm.startWorker();
  const fp32 = await render(job);
  await farm.stopWorker(fp32Worker);
  await farm.startWorker({ modelDir: dir });
  const int8 = await render(job);

  let squared = 0;
  for (let i = 0; i < fp32.length; i++) squared += (fp32[i] - int8[i]) ** 2;
  expect(squared).toBeGreaterThan(0); // the copy's weights did change…
  expect(psnr(squared, fp32.length)).toBeGreaterThan(30); // …by less than the goal allows
});
