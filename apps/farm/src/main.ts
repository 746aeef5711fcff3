/**
 * `npm start`: the whole farm on one machine with embedded defaults (see launch-farm.ts).
 * Signals are handled from the first line: the supervisor exists before the launcher and its
 * dependencies are even loaded, so a Ctrl-C or SIGTERM at any moment stops whatever started.
 */
import { Supervisor } from './supervisor';

const supervisor = new Supervisor();
import('./launch-farm')
  .then(({ launchFarm }) => launchFarm(supervisor))
  .catch((err) => supervisor.stop(1, err instanceof Error ? err.message : String(err)));
