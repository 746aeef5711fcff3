/**
 * The tick planner's fair share (deficit round robin across tenants, in latent cells): a tenant
 * alone gets the whole budget, a light tenant's step runs every tick beside a heavy one (and a
 * tenant present without lanes holds the heavy one to a lane per tick), backlogged tenants get
 * equal cells, and every tick runs something.
 */
import { FairShare, PendingWork, PlannedLane } from '@farm/pipeline';

const BUDGET = 8 * 64 * 64;
const FLOOR = 16 * 16;

/** A job with `n` lanes of `cost` cells each, all still to run. */
const job = (id: string, tenant: string, n: number, cost: number): PendingWork => ({ job: id, tenant, lanes: Array.from({ length: n }, (_, index) => ({ index, cost })) });

/**
 * Runs ticks over jobs whose steps repeat forever: each tick's planned lanes are done; a job whose
 * lanes all ran starts its next step (all its lanes again). Returns each tick's plan.
 */
function simulate(share: FairShare, jobs: PendingWork[], ticks: number): PlannedLane[][] {
  const left = new Map(jobs.map((j) => [j.job, j.lanes]));
  const plans: PlannedLane[][] = [];
  for (let t = 0; t < ticks; t++) {
    const plan = share.plan(jobs.map((j) => ({ ...j, lanes: left.get(j.job)! })));
    plans.push(plan);
    for (const j of jobs) {
      const rest = left.get(j.job)!.filter((l) => !plan.some((p) => p.job === j.job && p.index === l.index));
      left.set(j.job, rest.length === 0 ? j.lanes : rest);
    }
  }
  return plans;
}

const cellsOf = (plan: PlannedLane[], jobs: PendingWork[]) =>
  plan.reduce((sum, p) => sum + jobs.find((j) => j.job === p.job)!.lanes[p.index].cost, 0);

describe('FairShare', () => {
  it('gives a tenant alone the whole budget, and no more', () => {
    const share = new FairShare({ budget: BUDGET, floor: FLOOR });
    const plan = share.plan([job('a', 't', 20, 4096)]);
    expect(plan).toHaveLength(8);
    expect(plan.map((p) => p.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("runs a light tenant's whole step every tick beside a heavy tenant, whose share is one lane now and then", () => {
    const share = new FairShare({ budget: BUDGET, floor: FLOOR });
    const jobs = [job('heavy', 'h', 34, 4096), job('light', 'l', 1, 64)];
    const plans = simulate(share, jobs, 64);
    // The light job's lane is in every tick…
    expect(plans.every((plan) => plan.some((p) => p.job === 'light'))).toBe(true);
    // …and the heavy tenant earns the floor per tick: one 4096-cell lane every 16 ticks.
    const heavyLanes = plans.map((plan) => plan.filter((p) => p.job === 'heavy').length);
    expect(heavyLanes.reduce((a, b) => a + b, 0)).toBe(4);
    expect(Math.max(...plans.map((plan) => cellsOf(plan, jobs)))).toBe(64 + 4096);
  });

  it('runs a heavy tenant a lane per tick while another tenant is present without lanes', () => {
    const share = new FairShare({ budget: BUDGET, floor: FLOOR });
    const jobs = [job('heavy', 'h', 34, 4096)];
    for (let t = 0; t < 5; t++) expect(share.plan(jobs, ['l'])).toHaveLength(1);
    expect(share.plan(jobs)).toHaveLength(8); // alone again: the whole budget
  });

  it('shares the budget evenly between backlogged tenants (within 5% over 40 ticks)', () => {
    const share = new FairShare({ budget: BUDGET, floor: FLOOR });
    const jobs = [job('a', 'A', 34, 4096), job('b', 'B', 18, 4096), job('c', 'C', 9, 1024)];
    const plans = simulate(share, jobs, 40);
    const got = (tenant: string) => plans.flat().filter((p) => jobs.find((j) => j.job === p.job)!.tenant === tenant);
    const cells = (tenant: string) => cellsOf(got(tenant), jobs);
    // Equal within the lanes' granularity: 4096-cell lanes do not divide a 9216-cell quantum.
    const totals = ['A', 'B', 'C'].map(cells);
    expect(Math.max(...totals) / Math.min(...totals)).toBeLessThan(1.05);
    expect(plans.every((plan) => cellsOf(plan, jobs) <= BUDGET)).toBe(true);
  });

  it("runs a tenant's job with the least work left in its step first", () => {
    const share = new FairShare({ budget: 3 * 4096, floor: FLOOR });
    const plan = share.plan([job('big', 't', 5, 4096), job('small', 't', 1, 4096)]);
    expect(plan.map((p) => p.job)).toEqual(['small', 'big', 'big']);
  });

  it('runs a lane larger than the budget alone, and always runs something', () => {
    const share = new FairShare({ budget: 4096, floor: 64 });
    expect(share.plan([job('huge', 't', 2, 16384)])).toEqual([{ job: 'huge', index: 0 }]);
    // Nine tenants: a quantum (4096 / 9) is less than any lane, yet each tick runs one.
    const many = new FairShare({ budget: 4096, floor: 64 });
    const jobs = Array.from({ length: 9 }, (_, i) => job(`j${i}`, `t${i}`, 4, 1024));
    const plans = simulate(many, jobs, 36);
    expect(plans.every((plan) => plan.length > 0 && cellsOf(plan, jobs) <= 4096)).toBe(true);
    expect(new Set(plans.flat().map((p) => p.job)).size).toBe(9);
  });

  it("forgets a tenant's credit when its work is done", () => {
    const share = new FairShare({ budget: BUDGET, floor: FLOOR });
    share.plan([job('heavy', 'h', 34, 4096), job('light', 'l', 1, 64)]); // h earns 256, spends nothing
    share.plan([job('light', 'l', 1, 64)]); // h gone: its credit with it
    const plan = share.plan([job('heavy', 'h', 34, 4096), job('light', 'l', 1, 64)]);
    expect(plan.filter((p) => p.job === 'heavy')).toHaveLength(0);
  });
});
