/**
 * A service process's SIGTERM/SIGINT handling, armed from its first line. Loading a service's
 * modules takes about a second, so its entry point creates this first — importing it by its own
 * path (`@farm/platform/dist/shutdown-signals`: it imports nothing) — and loads the rest after.
 * A signal before the service registers its shutdown exits 0 at once (nothing was accepted yet);
 * after, the service's shutdown runs (drain, close), then the process exits 0. A second signal
 * exits 1 at once.
 */
export class ShutdownSignals {
  private shutdown: ((signal: string) => Promise<void>) | null = null;
  private stopping = false;

  constructor(
    private readonly name: string,
    private readonly exit: (code: number) => void = (code) => process.exit(code),
  ) {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void this.stop(signal));
  }

  /** What the service does on a signal once it is starting: finish, close its connections. */
  onShutdown(shutdown: (signal: string) => Promise<void>): void {
    this.shutdown = shutdown;
  }

  private async stop(signal: string): Promise<void> {
    if (this.stopping) {
      console.error(`${this.name}: ${signal} again, exiting now`);
      return this.exit(1);
    }
    this.stopping = true;
    if (!this.shutdown) {
      console.log(`${this.name}: ${signal} during start-up, exiting`);
      return this.exit(0);
    }
    try {
      await this.shutdown(signal);
    } catch (err) {
      console.error(`${this.name}: shutting down: ${err instanceof Error ? err.message : err}`);
    }
    this.exit(0);
  }
}
