/** The queued job: what the API decides goes in once, and the worker's one check of it refuses anything less. */
import { DEFAULT_LIMITS, JobRequest, parseJobRequest, queuedJob, queuedJobSchema } from '@farm/contracts';

const schema = queuedJobSchema(DEFAULT_LIMITS);

function request(body: unknown): JobRequest {
  const parsed = parseJobRequest(body);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
}

const problems = (data: unknown) => {
  const parsed = schema.safeParse(data);
  if (parsed.success) throw new Error('expected the queued job to be refused');
  return parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('the queued job', () => {
  it('carries the request with its defaults, the seed, the model and the tenant', () => {
    const job = queuedJob(request({ type: 'generate', prompt: 'a red circle' }), { seed: 7, model: 'shapes-ldm', tenant: 'acme' });
    expect(job).toEqual({
      request: { type: 'generate', prompt: 'a red circle', width: 512, height: 512, steps: 4, guidanceScale: 1, format: 'png', priority: 5, webhookEvents: ['completed'], seed: 7, model: 'shapes-ldm' },
      tenant: 'acme',
    });
    expect(schema.parse(job)).toEqual(job);
  });

  it('keeps a seed the client chose', () => {
    expect(queuedJob(request({ type: 'generate', prompt: 'x', seed: 42 }), { seed: 42, model: 'm', tenant: 't' }).request.seed).toBe(42);
  });

  it("decides an edit's strength (mask edits 1, prompt edits 0.75, or the client's) and carries its source job", () => {
    const sourceJob = { imageKey: 'results/src.png', prompt: 'a blue background' };
    const decided = { seed: 1, model: 'shapes-ldm', tenant: 'acme', sourceJob };
    const maskEdit = queuedJob(request({ type: 'edit', source: 'src', prompt: 'a red square', mask: { rects: [[0, 0, 8, 8]] } }), decided);
    const promptEdit = queuedJob(request({ type: 'edit', source: 'src', prompt: 'a green circle' }), decided);
    const chosen = queuedJob(request({ type: 'edit', source: 'src', prompt: 'a green circle', strength: 0.5 }), decided);
    expect([maskEdit, promptEdit, chosen].map((j) => j.request.type === 'edit' && j.request.strength)).toEqual([1, 0.75, 0.5]);
    expect(schema.parse(promptEdit)).toEqual({ ...promptEdit, sourceJob });
  });

  it('is refused without what the API decides, naming what is missing', () => {
    const job = queuedJob(request({ type: 'generate', prompt: 'a red circle' }), { seed: 7, model: 'shapes-ldm', tenant: 'acme' });
    const { seed: _seed, model: _model, ...undecided } = job.request;
    expect(problems({ ...job, request: undecided })).toEqual(expect.arrayContaining([expect.stringMatching(/^request\.seed: /), expect.stringMatching(/^request\.model: /)]));
    expect(problems({ request: job.request })).toEqual([expect.stringMatching(/^tenant: /)]);
    expect(problems({ ...job, request: { ...job.request, width: 100 } })).toEqual([expect.stringMatching(/^request\.width: .*multiple of 8/)]);
  });

  it('pairs an edit of a job with its source job, and nothing else with one', () => {
    const edit = queuedJob(request({ type: 'edit', source: 'src', prompt: 'a green circle' }), { seed: 1, model: 'm', tenant: 't' });
    expect(problems(edit)).toEqual([expect.stringMatching(/^sourceJob: /)]);
    const generate = queuedJob(request({ type: 'generate', prompt: 'x' }), { seed: 1, model: 'm', tenant: 't' });
    expect(problems({ ...generate, sourceJob: { imageKey: 'k', prompt: 'p' } })).toEqual([expect.stringMatching(/^sourceJob: /)]);
  });
});
