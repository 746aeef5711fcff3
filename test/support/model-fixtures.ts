/**
 * Fake-weight Optimum exports for tests, written at test time into a temporary folder (nothing
 * heavy is committed): one folder per family × export generation × dtype, made on first use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Family, FixtureOptions, Generation, writeOptimumFixture } from '@farm/model-tools';

export class ModelFixtures {
  private readonly root = mkdtempSync(path.join(os.tmpdir(), 'farm-fixtures-'));
  private readonly made = new Map<string, string>();

  dir(family: Family, generation: Generation, options: Omit<FixtureOptions, 'family' | 'generation'> = {}): string {
    const name = [family, generation, options.dtype ?? 'fp32', ...(options.omit ?? []).map((p) => `no-${p}`)].join('-');
    if (!this.made.has(name)) this.made.set(name, writeOptimumFixture(path.join(this.root, name), { family, generation, ...options }));
    return this.made.get(name)!;
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
