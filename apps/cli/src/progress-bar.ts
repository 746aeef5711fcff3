/**
 * A text progress bar, `[#####-----] 5/10`: redrawn in place with `\r` on a terminal, one
 * line per update otherwise (logs, pipes, CI).
 */
import type { OutputStream } from './cli-io';

export function renderBar(step: number, total: number, width = 20): string {
  const done = total > 0 ? Math.min(step, total) / total : 0;
  const filled = Math.round(done * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${step}/${total}`;
}

export class ProgressBar {
  private open = false;

  constructor(
    private readonly stream: OutputStream,
    private readonly width = 20,
  ) {}

  update(step: number, total: number): void {
    const line = renderBar(step, total, this.width);
    if (this.stream.isTTY) {
      this.stream.write(`\r${line}`);
      this.open = true;
    } else {
      this.stream.write(`${line}\n`);
    }
  }

  /** Ends the redrawn line, so what follows starts on a new one. */
  end(): void {
    if (this.open) this.stream.write('\n');
    this.open = false;
  }
}
