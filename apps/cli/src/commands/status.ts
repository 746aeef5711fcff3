/** `farm status <job> [--wait] [-o out.png]`: print a job's JSON, or follow it to its end first. */
import type { FarmClient } from '@farm/client';
import { type CliIo, printJson } from '../cli-io';
import { followJob } from '../follow-job';

export interface StatusOptions {
  wait?: boolean;
  output?: string;
}

export async function status(client: FarmClient, io: CliIo, id: string, options: StatusOptions): Promise<number> {
  if (options.wait || options.output) return followJob(client, id, io, { output: options.output, cancelOnAbort: false });
  printJson(io.stdout, await client.get(id, { signal: io.signal }));
  return 0;
}
