/**
 * The launcher's life cycle: what it started (child processes, in-process servers) is stopped in
 * reverse order when any child ends — however it ended, a signal included — or when the launcher
 * gets SIGINT/SIGTERM, from the moment it is constructed. A second signal kills what is left.
 */
import type { ChildProcess } from 'node:child_process';

export interface SupervisorOptions {
  log?: (line: string) => void;
  exit?: (code: number) => void;
}

interface Part {
  name: string;
  stop: () => Promise<void>;
  /** Set for child processes: killed outright by a second signal. */
  child?: ChildProcess;
}

function ended(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** SIGTERM, then SIGKILL if the child is still there after `killAfterMs`. */
function terminate(child: ChildProcess, killAfterMs: number): Promise<void> {
  if (ended(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export class Supervisor {
  private readonly parts: Part[] = [];
  private stopping: Promise<void> | null = null;
  private readonly log: (line: string) => void;
  private readonly exit: (code: number) => void;

  constructor(options: SupervisorOptions = {}) {
    this.log = options.log ?? ((line) => console.error(`[farm] ${line}`));
    this.exit = options.exit ?? ((code) => process.exit(code));
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => (this.stopping ? this.killAll(signal) : void this.stop(0, `${signal}: stopping the farm`)));
    }
  }

  /**
   * A child whose end, however it comes, stops the farm (exit code 1). When the farm stops, it
   * gets SIGTERM and `killAfterMs` to exit before SIGKILL.
   */
  adopt(name: string, child: ChildProcess, killAfterMs: number): ChildProcess {
    this.parts.push({ name, child, stop: () => terminate(child, killAfterMs) });
    child.once('exit', (code, signal) => {
      if (!this.stopping) void this.stop(1, `${name} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}; stopping the farm`);
    });
    return child;
  }

  /** Something in-process to close when the farm stops (after the parts started later). */
  onStop(name: string, stop: () => Promise<void>): void {
    this.parts.push({ name, stop });
  }

  /** Stops every part, last started first, then exits with `code`. Later calls wait for the first. */
  stop(code: number, reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log(reason);
      while (this.parts.length > 0) {
        const part = this.parts.pop()!;
        await part.stop().catch((err) => this.log(`stopping ${part.name}: ${(err as Error).message}`));
      }
      this.exit(code);
    })();
    return this.stopping;
  }

  private killAll(signal: string): void {
    this.log(`${signal} again: killing what is left`);
    for (const { child } of this.parts) if (child && !ended(child)) child.kill('SIGKILL');
    this.exit(1);
  }
}
