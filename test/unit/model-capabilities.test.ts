/** The submit-time check of a request against what its model can serve (pure; no model loaded). */
import { ModelCapabilities, capabilityProblems, parseJobRequest, sampleStepsProblem } from '@farm/contracts';

const parse = (body: Record<string, unknown>) => {
  const parsed = parseJobRequest(body);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  return parsed.value;
};
const turbo: ModelCapabilities = { sizeMultiple: 8, guidance: { kind: 'cfg' }, sampler: { kind: 'spaced' } };
const lcm: ModelCapabilities = { sizeMultiple: 8, guidance: { kind: 'embedded', min: 1, max: 16 }, sampler: { kind: 'lcm', originalSteps: 50 } };

describe('capabilityProblems', () => {
  it('accepts what the model serves', () => {
    expect(capabilityProblems(parse({ type: 'generate', prompt: 'a cat', steps: 1 }), turbo)).toEqual([]);
    expect(capabilityProblems(parse({ type: 'generate', prompt: 'a cat', steps: 4, guidanceScale: 8 }), lcm)).toEqual([]);
  });

  it('names guidanceScale outside the range a guidance-embedded model takes', () => {
    expect(capabilityProblems(parse({ type: 'generate', prompt: 'a cat', guidanceScale: 0.5 }), lcm)).toEqual([
      { path: 'guidanceScale', message: expect.stringMatching(/^guidanceScale must be 1 … 16 for this model/) },
    ]);
  });

  it('names a size that is not a multiple of the model’s pixels per latent cell', () => {
    const problems = capabilityProblems(parse({ type: 'generate', prompt: 'a cat', width: 520, height: 512 }), { ...turbo, sizeMultiple: 16 });
    expect(problems).toEqual([{ path: 'width', message: 'width must be a multiple of 16 for this model' }]);
  });

  it('names an edit whose steps × strength make no step', () => {
    const edit = parse({ type: 'edit', source: 'job-1', prompt: 'a dog', mask: { rects: [[0, 0, 8, 8]] }, steps: 1, strength: 0.5 });
    expect(capabilityProblems(edit, turbo)).toEqual([{ path: 'strength', message: 'steps × strength must make at least one step (1 × 0.5 makes none)' }]);
    expect(capabilityProblems(edit, lcm)).toEqual([]);
  });

  it('uses a prompt edit’s default strength (0.75)', () => {
    expect(capabilityProblems(parse({ type: 'edit', source: 'job-1', prompt: 'a dog', steps: 1 }), turbo)).toHaveLength(1);
    expect(capabilityProblems(parse({ type: 'edit', source: 'job-1', prompt: 'a dog', steps: 2 }), turbo)).toEqual([]);
  });
});

describe('sampleStepsProblem', () => {
  it('follows LCMScheduler: steps out of ⌊original·strength⌋ distilled ones', () => {
    expect(sampleStepsProblem({ kind: 'lcm', originalSteps: 50 }, 8, 1)).toBeNull();
    expect(sampleStepsProblem({ kind: 'lcm', originalSteps: 50 }, 51, 1)).toMatch(/at most 50/);
    expect(sampleStepsProblem({ kind: 'lcm', originalSteps: 50 }, 4, 0.06)).toMatch(/at most 3 at strength 0.06/);
  });
});
