/**
 * Text embeddings by prompt, least-recently-used first out, so that repeated prompts (the
 * empty negative prompt above all) cost no text-encoder call. Concurrent misses for the same
 * prompt share one encoder call; misses arriving together are encoded as one batch.
 */

export type TextEncoder<T> = (prompts: readonly string[]) => Promise<T[]>;

export class TextEmbeddingCache<T> {
  private readonly entries = new Map<string, Promise<T>>();
  hits = 0;
  misses = 0;

  constructor(
    private readonly encode: TextEncoder<T>,
    /** Most prompts kept (default 256). */
    readonly capacity = 256,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error('capacity must be a positive integer');
  }

  async get(prompts: readonly string[]): Promise<T[]> {
    const missing = [...new Set(prompts.filter((p) => !this.entries.has(p)))];
    this.hits += prompts.length - missing.length;
    this.misses += missing.length;
    if (missing.length > 0) {
      const batch = this.encode(missing);
      missing.forEach((prompt, i) => {
        const entry = batch.then((all) => all[i]);
        entry.catch(() => this.entries.delete(prompt)); // a failed encode is not cached
        this.entries.set(prompt, entry);
      });
    }
    const result = Promise.all(prompts.map((p) => this.touch(p)));
    this.evict();
    return result;
  }

  private touch(prompt: string): Promise<T> {
    const entry = this.entries.get(prompt)!;
    this.entries.delete(prompt);
    this.entries.set(prompt, entry);
    return entry;
  }

  private evict(): void {
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
