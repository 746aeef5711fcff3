/**
 * The farm through Sentinel: a master and its replica (AOF) watched by 3 Sentinels of the test's
 * own, the API and a worker as real processes with REDIS_SENTINELS and REDIS_SENTINEL_NAME (and
 * a REDIS_URL nothing answers at). The farm's keys are on the master the Sentinels name; when it
 * dies while 100 jobs run, the Sentinels promote the replica, the farm follows it, and every
 * accepted job ends exactly once.
 */
import { expectExactlyOnce, failoverUnderLoad } from '../support/failover-load';
import { useFarmOn } from '../support/farm-processes';
import { LocalSentinels } from '../support/redis-topology';

const on = useFarmOn(() => LocalSentinels.start());

it('runs on the master the Sentinels name and follows it when it fails over under 100 jobs: every accepted job ends exactly once', async () => {
  const { farm, topology: sentinels, store } = on;
  const outcome = await failoverUnderLoad('Sentinel, the master killed under 100 jobs', farm, sentinels.target, store, async () => {
    const master = await sentinels.master();
    expect(await master.client.exists(`${farm.queuePrefix}:${farm.queueName}:api-keys`)).toBe(1); // the farm's keys are there
    const killedAt = await master.killCaughtUp();
    const promoted = await sentinels.failedOverFrom(master);
    return { what: `master ${master.port} killed, replica ${promoted.port} promoted by the Sentinels`, killedAt };
  });
  expectExactlyOnce(outcome);
  expect(farm.running).toBe(true);
}, 240000);
