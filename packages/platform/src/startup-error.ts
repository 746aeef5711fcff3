/**
 * How a process that cannot start says so: one line naming what is wrong and what to change,
 * then a non-zero exit. StartupError carries such a line; `exitOnStartupFailure` prints any
 * start-up error as one line.
 */

/** Why a process cannot start (a port taken, a dependency unreachable or misconfigured). */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** The handler of a process' start-up promise: prints `<process>: <reason>` on one line and exits 1. */
export function exitOnStartupFailure(processName: string): (err: unknown) => never {
  return (err) => {
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${processName}: ${message.split('\n').map((l) => l.trim()).filter(Boolean).join('; ')}`);
    process.exit(1);
  };
}
