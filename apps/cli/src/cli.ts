/**
 * The `farm` command line: commander wiring from argv to the command handlers, and the one
 * place errors become messages and exit codes. `run` never exits the process, so tests call
 * it directly: 0 success, 1 failure (an API error, a failed job), 2 usage, 130 interrupted.
 */
import { Command, CommanderError } from 'commander';
import { DEFAULT_API_URL, FarmApiError, FarmClient } from '@farm/client';
import type { CliIo } from './cli-io';
import { cancel } from './commands/cancel';
import { edit } from './commands/edit';
import { generate } from './commands/generate';
import { status } from './commands/status';
import { workers } from './commands/workers';
import { collectRect, parseFormat, parseInteger, parseNumber } from './option-parsers';

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const program = new Command('farm')
    .description('Submit, follow and cancel jobs of a diffusion rendering farm.')
    .option('--api <url>', `API base URL (default: env FARM_API_URL, else ${DEFAULT_API_URL})`)
    // No commander default here: --help would print the key.
    .option('--key <key>', 'API key, sent as "Authorization: Bearer <key>" (default: env FARM_API_KEY)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, 'farm: ')),
    })
    .showSuggestionAfterError();

  const client = () => {
    const { api, key } = program.opts<{ api?: string; key?: string }>();
    return new FarmClient({ baseUrl: api || io.env.FARM_API_URL || DEFAULT_API_URL, apiKey: key || io.env.FARM_API_KEY, fetch: io.fetch });
  };
  const REGIONS_HELP = 'regions.json: [{"prompt", "mask": {"rects"|"polygons"|"png"}, "strength"?}, …]';
  const renderOptions = (command: Command) =>
    command
      .option('--steps <n>', 'denoising steps (default 4)', parseInteger)
      .option('--seed <n>', 'random seed, for a repeatable image', parseInteger)
      .option('--guidance <g>', 'classifier-free guidance scale (default 1)', parseNumber)
      .option('--negative <text>', 'negative prompt')
      .option('--format <format>', 'png, jpeg or webp (default: from -o, else png)', parseFormat)
      .option('-o, --output <file>', 'write the image there (otherwise only its URL is printed)');

  renderOptions(
    program
      .command('generate')
      .description('generate an image from a prompt')
      .argument('<prompt>', 'what to draw')
      .option('--width <n>', 'width in pixels, a multiple of 8 (default 512)', parseInteger)
      .option('--height <n>', 'height in pixels, a multiple of 8 (default 512)', parseInteger)
      .option('--regions <file>', REGIONS_HELP),
  ).action(async (prompt: string, options) => {
    exitCode = await generate(client(), io, prompt, options);
  });

  renderOptions(
    program
      .command('edit')
      .description('re-render part of a finished job (or of an image file)')
      .argument('<source>', 'a job id, or an image file (PNG, JPEG or WebP; sides multiples of 8)')
      .argument('<prompt>', 'the prompt of the masked area, or the new prompt of the whole image')
      .option('--mask <file>', 'a greyscale PNG mask (white = change)')
      .option('--rect <x,y,w,h>', 'a rectangle to change (repeatable)', collectRect)
      .option('--regions <file>', `${REGIONS_HELP}, painted in`)
      .option('--strength <s>', 'how far the changed area is re-noised, 0 < s <= 1', parseNumber),
  ).action(async (source: string, prompt: string, options) => {
    exitCode = await edit(client(), io, source, prompt, options);
  });

  program
    .command('status')
    .description("print a job's JSON")
    .argument('<job>', 'job id')
    .option('--wait', 'follow the job to its end with a progress bar first')
    .option('-o, --output <file>', 'once it succeeded, write its image there (implies --wait)')
    .action(async (id: string, options) => {
      exitCode = await status(client(), io, id, options);
    });

  program
    .command('cancel')
    .description('cancel a queued or running job')
    .argument('<job>', 'job id')
    .action(async (id: string) => {
      exitCode = await cancel(client(), io, id);
    });

  program
    .command('workers')
    .description('list the live workers')
    .action(async () => {
      exitCode = await workers(client(), io);
    });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2; // help/version, or usage
    return report(err, io);
  }
}

function report(err: unknown, io: CliIo): number {
  if (io.signal?.aborted) return 130;
  if (err instanceof FarmApiError) {
    const where = err.status ? ` (HTTP ${err.status} ${err.code})` : ` (${err.code})`;
    io.stderr.write(`farm: ${err.message}${where}\n`);
    for (const field of err.fields ?? []) io.stderr.write(`  ${field.path}: ${field.message}\n`);
    if (err.status === 401) io.stderr.write('farm: pass an API key with --key or FARM_API_KEY\n');
    return 1;
  }
  io.stderr.write(`farm: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}
