/** @farm/cli: the `farm` command line as a function (`run`), for embedding and tests. */
export { run } from './cli';
export type { CliIo, OutputStream } from './cli-io';
export { ProgressBar, renderBar } from './progress-bar';
