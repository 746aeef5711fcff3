import { DEFAULT_LIMITS, isPromptEdit, parseJobRequest } from '@farm/contracts';

const valid = { type: 'generate', prompt: 'a red circle', width: 256, height: 128, steps: 4 };

function problems(body: unknown) {
  const r = parseJobRequest(body);
  if (r.ok) throw new Error('expected a validation failure');
  return r.problems;
}

describe('job request validation', () => {
  it('accepts a valid request and fills in defaults', () => {
    const r = parseJobRequest(valid);
    expect(r).toEqual({
      ok: true,
      value: { ...valid, guidanceScale: 1, format: 'png', priority: 5, webhookEvents: ['completed'] },
    });
  });

  it.each([
    [{ ...valid, width: 100 }, 'width', /multiple of 8/],
    [{ ...valid, height: 8 }, 'height', /at least 64/],
    [{ ...valid, width: 4096 }, 'width', /at most 2048/],
    [{ ...valid, width: '256' }, 'width', /integer/],
    [{ ...valid, steps: 0 }, 'steps', />=1|at least|too small/i],
    [{ ...valid, steps: 51 }, 'steps', /at most 50/],
    [{ ...valid, prompt: '   ' }, 'prompt', /empty/],
    [{ ...valid, prompt: 'x'.repeat(1001) }, 'prompt', /1000 characters/],
    [{ ...valid, seed: -1 }, 'seed', /.+/],
    [{ ...valid, format: 'gif' }, 'format', /.+/],
    [{ ...valid, guidanceScale: 99 }, 'guidanceScale', /.+/],
    [{ ...valid, colour: 'red' }, 'colour', /unknown field "colour"/],
    [{ ...valid, webhookEvents: [] }, 'webhookEvents', /at least one event/],
    [{ ...valid, webhookEvents: ['progress', 'progress'] }, 'webhookEvents', /an event twice/],
    [{ ...valid, webhookEvents: ['finished'] }, 'webhookEvents.0', /among: started, progress, completed/],
    [{ ...valid, webhookEvents: 'started' }, 'webhookEvents', /.+/],
  ])('names the offending field (%j)', (body, path, message) => {
    const found = problems(body);
    expect(found).toContainEqual({ path, message: expect.stringMatching(message) });
  });

  it('names every bad field at once', () => {
    const found = problems({ type: 'generate', width: 7, steps: 'many' }).map((p) => p.path);
    expect(found).toEqual(expect.arrayContaining(['prompt', 'width', 'steps']));
  });

  it('rejects unknown job types and non-objects with a plain sentence', () => {
    expect(problems({ ...valid, type: 'paint' })[0].message).toMatch(/type must be one of: generate/);
    expect(problems('hello')[0].path).toBe('(body)');
    expect(problems(null)[0].path).toBe('(body)');
  });

  it('honours configured limits', () => {
    const r = parseJobRequest({ ...valid, width: 1024 }, { ...DEFAULT_LIMITS, maxSize: 512 });
    expect(r.ok).toBe(false);
  });
});

describe('edit kinds', () => {
  const upload = { type: 'edit', source: { image: 'aGVsbG8=' }, prompt: 'a red circle' };
  const rect = { rects: [[0, 0, 8, 8]] };

  it('is a prompt edit with neither a mask nor regions, and only a job can be its source', () => {
    expect(isPromptEdit({})).toBe(true);
    expect(isPromptEdit({ regions: [] })).toBe(true);
    expect(isPromptEdit({ mask: rect })).toBe(false);
    expect(isPromptEdit({ regions: [{ prompt: 'x', mask: rect }] })).toBe(false);
    expect(problems(upload)).toEqual([{ path: 'mask', message: expect.stringMatching(/previous job/) }]);
    expect(problems({ ...upload, regions: [] })).toEqual([{ path: 'mask', message: expect.stringMatching(/previous job/) }]);
    expect(parseJobRequest({ ...upload, regions: [{ prompt: 'a red circle', mask: rect }] }).ok).toBe(true);
    expect(parseJobRequest({ ...upload, source: 'job-1' }).ok).toBe(true);
  });
});
