/** `farm workers`: the live fleet as JSON (`{"workers": […], "models": […]}`), as `GET /v1/workers` answers it. */
import type { FarmClient } from '@farm/client';
import { type CliIo, printJson } from '../cli-io';

export async function workers(client: FarmClient, io: CliIo): Promise<number> {
  printJson(io.stdout, await client.fleet({ signal: io.signal }));
  return 0;
}
