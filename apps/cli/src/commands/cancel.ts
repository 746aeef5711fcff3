/** `farm cancel <job>`: cancel a queued or running job; print its JSON. A finished job is an error. */
import type { FarmClient } from '@farm/client';
import { type CliIo, printJson } from '../cli-io';

export async function cancel(client: FarmClient, io: CliIo, id: string): Promise<number> {
  printJson(io.stdout, await client.cancel(id, { signal: io.signal }));
  return 0;
}
