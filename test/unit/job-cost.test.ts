/**
 * A job's cost (pixels × lanes × steps) as the API measures it at submit: regions and guidance in
 * the lanes, an edit's steps at its strength, a model that embeds guidance, the README's examples
 * within the default ceiling and issue 14's heavy job beside it, and a session state over it.
 */
import { CanvasState, DEFAULT_LIMITS, GenerateRequest, JobRequest, ModelCapabilities, checkCanvasState, costProblem, jobCost, parseJobRequest } from '@farm/contracts';
import { BUNDLED_MODEL_CAPABILITIES } from '@farm/platform';

const parse = (body: unknown): JobRequest => {
  const parsed = parseJobRequest(body);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
};
/** A generation, whose canvas is its own size. */
const generation = (body: object) => parse({ type: 'generate', ...body }) as GenerateRequest;
const spaced: ModelCapabilities = { sizeMultiple: 8, guidance: { kind: 'cfg' }, sampler: { kind: 'spaced' } };
const embedded: ModelCapabilities = { sizeMultiple: 8, guidance: { kind: 'embedded', min: 1, max: 16 }, sampler: { kind: 'lcm', originalSteps: 50 } };
const full = (side: number) => ({ prompt: 'a red square', mask: { rects: [[0, 0, side, side]] as [number, number, number, number][] }, strength: 1 });

describe('jobCost', () => {
  it("counts issue 14's heavy job: 1024² × (1 + 8 regions) × 2 (guidance) × 6 steps", () => {
    const heavy = generation({ prompt: 'a white background', width: 1024, height: 1024, steps: 6, guidanceScale: 2, regions: Array(8).fill(full(1024)) });
    expect(jobCost(heavy, heavy, BUNDLED_MODEL_CAPABILITIES)).toEqual({ pixels: 1048576, lanes: 18, steps: 6, total: 113246208 });
    // Within the default ceiling: it is accepted, and the worker shares its ticks fairly.
    expect(costProblem(jobCost(heavy, heavy, BUNDLED_MODEL_CAPABILITIES), DEFAULT_LIMITS.maxJobCost)).toBeNull();
  });

  it('runs no second lane for a model that embeds the guidance scale, and none at guidance 1', () => {
    const guided = generation({ prompt: 'a cat', width: 512, height: 512, steps: 4, guidanceScale: 8 });
    expect(jobCost(guided, guided, embedded).lanes).toBe(1);
    expect(jobCost(guided, guided, spaced).lanes).toBe(2);
    expect(jobCost(guided, guided, null).lanes).toBe(2); // unknown model: the dearest reading
    const plain = generation({ prompt: 'a cat', width: 512, height: 512, steps: 4 });
    expect(jobCost(plain, plain, spaced).lanes).toBe(1);
  });

  it("counts an edit's source canvas and the steps its scheduler runs at its strength", () => {
    const edit = parse({ type: 'edit', source: 'job-1', prompt: 'a dog', mask: { rects: [[0, 0, 8, 8]] }, steps: 10, strength: 0.55 });
    const source = { width: 768, height: 512 };
    expect(jobCost(edit, source, spaced)).toEqual({ pixels: 393216, lanes: 1, steps: 5, total: 1966080 });
    expect(jobCost(edit, source, embedded).steps).toBe(10); // LCM runs `steps` of its distilled ones
  });

  it("admits every example of the README under the default ceiling, and names the numbers when over one", () => {
    const examples = [
      { prompt: 'a red circle and a blue square on a yellow background', width: 512, height: 512, steps: 4, guidanceScale: 1 },
      { prompt: 'a blue background', width: 512, height: 256, regions: [full(160), full(200), full(100)] },
      { prompt: 'a panorama', width: 2048, height: 512 },
    ].map(generation);
    for (const example of examples) {
      expect(jobCost(example, example, BUNDLED_MODEL_CAPABILITIES).total).toBeLessThanOrEqual(4194304);
    }
    const big = generation({ prompt: 'a red circle', width: 2048, height: 2048, steps: 50, guidanceScale: 2 });
    const cost = jobCost(big, big, BUNDLED_MODEL_CAPABILITIES);
    expect(cost.total).toBe(419430400);
    expect(costProblem(cost, DEFAULT_LIMITS.maxJobCost)).toBe(
      'the job costs 419430400 pixel-steps (4194304 pixels × 2 lanes × 50 steps); this farm takes at most 134217728 per job (MAX_JOB_COST): fewer pixels, regions or steps, or no guidance, would fit',
    );
  });

  it("refuses a live session's state that costs more than a job may", () => {
    const spec = { width: 1024, height: 1024, steps: 4, guidanceScale: 2, format: 'png' as const, model: 'shapes-ldm' };
    const state: CanvasState = { seq: 0, prompt: 'a blue background', seed: 1, regions: { a: full(1024), b: full(1024) } };
    expect(checkCanvasState(state, spec, DEFAULT_LIMITS)).toEqual([]);
    const [problem] = checkCanvasState(state, spec, { ...DEFAULT_LIMITS, maxJobCost: 1 << 24 });
    expect(problem.message).toMatch(/^a frame of this canvas costs 25165824 pixel-steps .*at most 16777216/);
  });
});
