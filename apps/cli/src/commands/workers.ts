/** `farm workers`: the live workers as JSON (`{"workers": […]}`). */
import type { FarmClient } from '@farm/client';
import { type CliIo, printJson } from '../cli-io';

export async function workers(client: FarmClient, io: CliIo): Promise<number> {
  printJson(io.stdout, { workers: await client.workers({ signal: io.signal }) });
  return 0;
}
