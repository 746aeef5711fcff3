/**
 * The per-job cost ceiling over real HTTP (MAX_JOB_COST set low): a job within it is queued and
 * carries its cost; one over it is a 400 job_too_costly holding its cost and the limit, and never
 * reaches the queue; an uploaded edit source counts at its own size; a session's state over it is
 * refused. Answers are checked against the OpenAPI document by the test setup.
 */
import sharp from 'sharp';
import { DEFAULT_LIMITS } from '@farm/contracts';
import { Harness, postJob, TestApi, useFarm } from '../support/harness';

/** 256×256 at guidance 2 and 4 steps: 65536 pixels × 2 lanes × 4 steps. */
const LIMIT = 65536 * 2 * 4;

let farm: Harness;
let api: TestApi;
useFarm((f, a) => {
  farm = f;
  api = a;
}, { limits: { ...DEFAULT_LIMITS, maxJobCost: LIMIT } });

const job = { type: 'generate', prompt: 'a red circle', width: 256, height: 256, steps: 4, guidanceScale: 2 };
const region = { prompt: 'a blue square', mask: { rects: [[0, 0, 64, 64]] } };
const upload = async (side: number) => (await sharp({ create: { width: side, height: side, channels: 3, background: '#3366cc' } }).png().toBuffer()).toString('base64');

describe('MAX_JOB_COST', () => {
  it('queues a job at the ceiling, with its cost in the job', async () => {
    const res = await postJob(api, job);
    expect(res.status).toBe(202);
    expect(res.body.cost).toEqual({ pixels: 65536, lanes: 2, steps: 4, total: LIMIT });
    const stored = (await (await api.fetch(`/v1/jobs/${res.body.id}`)).json()) as Record<string, any>;
    expect(stored.cost.total).toBe(LIMIT);
  });

  it('refuses a job over it with job_too_costly, its cost and the limit, and queues nothing', async () => {
    const before = await farm.queue.count();
    const res = await postJob(api, { ...job, regions: [region] });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('job_too_costly');
    expect(res.body.error.cost).toEqual({ pixels: 65536, lanes: 4, steps: 4, total: 2 * LIMIT, limit: LIMIT });
    expect(res.body.error.message).toContain('MAX_JOB_COST');
    expect(await farm.queue.count()).toBe(before);
  });

  it("counts an uploaded edit source at its own size", async () => {
    const edit = { type: 'edit', prompt: 'a red square', mask: { rects: [[0, 0, 32, 32]] }, steps: 4, guidanceScale: 2 };
    expect((await postJob(api, { ...edit, source: { image: await upload(256) } })).status).toBe(202);
    const over = await postJob(api, { ...edit, source: { image: await upload(512) } });
    expect(over.status).toBe(400);
    expect(over.body.error.cost).toMatchObject({ pixels: 262144, total: 262144 * 2 * 4 });
  });

  it("refuses a live session whose state costs more than a job may", async () => {
    const res = await api.fetch('/v1/sessions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ prompt: 'a blue background', width: 256, height: 256, steps: 4, guidanceScale: 2, regions: { a: region } }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as Record<string, any>;
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.fields[0].message).toMatch(/^a frame of this canvas costs 1048576 pixel-steps .*MAX_JOB_COST/);
  });
});
