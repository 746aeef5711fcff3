#!/usr/bin/env node
/**
 * The `farm` executable as npm links it. Committed JavaScript, so the bin exists when `npm ci`
 * links workspace bins (before anything is compiled) and `npx farm` never looks for a package of
 * that name in the registry. Runs the compiled command line, compiling it first (`tsc -b apps/cli`,
 * a few seconds) on a fresh clone where nothing is built yet.
 */
'use strict';
const { existsSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const cliDir = path.resolve(__dirname, '..');
const main = path.join(cliDir, 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('farm: compiling the command line (first run in this checkout)\n');
  // stdout stays the command's own output: the compiler's messages go to stderr.
  const build = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', cliDir], { stdio: ['ignore', 2, 2] });
  if (build.status !== 0 || !existsSync(main)) {
    process.stderr.write('farm: could not compile the command line; run `npm run build` in the repository to see why\n');
    process.exit(2);
  }
}
require(main);
