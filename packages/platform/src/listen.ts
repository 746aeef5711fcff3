/**
 * Binding a port at start-up: resolves once the server listens, or rejects with a one-line
 * reason naming the setting to change (port taken, no permission, no such address), so a
 * process never reports success while another one holds its port.
 */
import { Server, createServer } from 'node:net';
import { StartupError } from './startup-error';

/** The one-line reason a `listen` failed. */
export function listenFailure(err: NodeJS.ErrnoException, port: number, host: string | undefined, setting: string): StartupError {
  const where = `${host ?? '*'}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(`port ${port} is already in use (${setting}); stop what listens there or set ${setting} to a free port`);
    case 'EACCES':
      return new StartupError(`no permission to listen on ${where} (${setting}); ports below 1024 need privileges`);
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
      return new StartupError(`cannot listen on ${where}: ${host} is not an address of this machine`);
    default:
      return new StartupError(`cannot listen on ${where} (${setting}): ${err.message}`);
  }
}

/** `server.listen(port, host)` as a promise that rejects with a StartupError. */
export function listen(server: Server, port: number, host: string | undefined, setting: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(listenFailure(err, port, host, setting));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Rejects with a StartupError when `port` cannot be bound now, for servers that bind their port
 * themselves and report a failure only as a crash (s3rver). Port 0 is always free.
 */
export async function assertPortFree(port: number, host: string | undefined, setting: string): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await listen(probe, port, host, setting);
  await new Promise((resolve) => probe.close(resolve));
}
