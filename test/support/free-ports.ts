/** Ports free now, for servers a test starts as child processes (which cannot report a port 0's pick). */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';

/** `count` different ports the OS hands out now (all held until every one is known). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => resolve(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
