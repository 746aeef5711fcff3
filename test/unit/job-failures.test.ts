/** Job failure codes: one class per code with its retry rule, one classifier, and the README lists exactly these codes. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  InferenceError,
  InternalJobError,
  InvalidJobError,
  JOB_FAILURE_CODES,
  JobCanceledError,
  StorageUnavailableError,
  classifyFailure,
} from '@farm/contracts';

describe('job failures', () => {
  it('carry their code and whether another attempt can help', () => {
    const cases = [
      [new InvalidJobError('width: must be a multiple of 8'), 'invalid_job', false],
      [new InferenceError('onnxruntime: out of memory'), 'inference_failed', true],
      [new StorageUnavailableError('S3: connection refused'), 'storage_unavailable', true],
      [new JobCanceledError('canceled by the client'), 'canceled', false],
      [new InternalJobError('undefined is not a function'), 'internal_error', true],
    ] as const;
    for (const [failure, code, retryable] of cases) {
      expect([failure.code, failure.retryable]).toEqual([code, retryable]);
      expect(failure.view()).toEqual({ code, message: failure.message });
    }
    expect(new Set(cases.map(([, code]) => code))).toEqual(new Set(JOB_FAILURE_CODES));
  });

  it('classifies typed failures as they are and anything else as internal, whatever its message says', () => {
    const typed = new StorageUnavailableError('down');
    expect(classifyFailure(typed)).toBe(typed);
    const foreign = classifyFailure(new Error('invalid_job: looks like a code but is not one'));
    expect(foreign).toBeInstanceOf(InternalJobError);
    expect(foreign.view()).toEqual({ code: 'internal_error', message: 'invalid_job: looks like a code but is not one' });
    expect(classifyFailure('a string').message).toBe('a string');
  });

  it('are documented, all of them and no others, in the README', () => {
    const readme = readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
    const section = /### Job failure codes\n([\s\S]*?)\n#/.exec(readme)![1];
    const documented = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented).toEqual([...JOB_FAILURE_CODES]);
  });
});
