/**
 * What a command may touch besides the API: two output streams, the environment, the working
 * directory and an abort signal (Ctrl-C). Tests pass in-memory streams; `main.ts` the process'.
 */
export interface OutputStream {
  write(chunk: string): unknown;
  /** True for a terminal: the progress bar then redraws one line with `\r`. */
  isTTY?: boolean;
}

export interface CliIo {
  stdout: OutputStream;
  stderr: OutputStream;
  env: Record<string, string | undefined>;
  /** Relative file names are resolved against it (default: the process' working directory). */
  cwd?: string;
  /** Aborting it stops following a job, and cancels the job it started. */
  signal?: AbortSignal;
  /** The fetch the client uses (default: the global one). */
  fetch?: typeof fetch;
}

/** Writes a value as indented JSON and a newline. */
export function printJson(stream: OutputStream, value: unknown): void {
  stream.write(`${JSON.stringify(value, null, 2)}\n`);
}
