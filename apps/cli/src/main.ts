#!/usr/bin/env node
/** The `farm` executable: runs the command line on the process' streams; Ctrl-C once stops following (and cancels a job it submitted), twice quits. */
import { run } from './cli';

const interrupt = new AbortController();
process.on('SIGINT', () => {
  if (interrupt.signal.aborted) process.exit(130);
  interrupt.abort();
});

run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: interrupt.signal }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('farm: unexpected error', err);
    process.exitCode = 1;
  },
);
