/**
 * Which lanes a tick of the stream batch runs: deficit round robin across tenants, in latent
 * cells. Every tick each tenant with work earns a quantum; it runs lanes (its jobs with the least
 * work left in their step first) while its deficit covers them, within the tick's budget. The
 * quantum follows the lightest tenant's need — at least `floor`, at most an even share of the
 * budget — so a tenant with a small job gets its whole step every tick while a tenant with a
 * heavy one advances a lane at a time: a heavy job stretches over more, short ticks instead of
 * making every tick long. Tenants present without lanes (their jobs decoding, storing, about to
 * join) compete too, with no need of their own: a heavy tenant then runs a lane per tick, so the
 * model calls their decodes and next steps queue behind stay short (a model runs one call at a time). A tenant alone gets the whole budget.
 * State (deficits, whose turn it is) lives here; no clock, no I/O.
 */

/** One job's lanes still to run in its current step. */
export interface PendingWork {
  job: string;
  tenant: string;
  /** Each lane's index in the job and its cost (latent cells, h·w). */
  lanes: readonly { index: number; cost: number }[];
}

export interface FairShareOptions {
  /** Most cells one tick runs (a single larger lane runs alone). */
  budget: number;
  /** Smallest quantum a tenant earns per tick while others compete (a native-size lane). */
  floor: number;
}

export interface PlannedLane {
  job: string;
  index: number;
}

export class FairShare {
  private readonly deficits = new Map<string, number>();
  /** Tenants in round-robin order; the tick's first tenant moves on by one each tick. */
  private order: string[] = [];

  constructor(private readonly options: FairShareOptions) {
    if (!(options.budget > 0) || !(options.floor > 0)) throw new Error(`budget and floor must be positive, got ${options.budget} and ${options.floor}`);
  }

  /** The quantum each competing tenant earns this tick, from their needs (cells each has left). */
  quantum(needs: readonly number[]): number {
    const { budget, floor } = this.options;
    if (needs.length <= 1) return budget;
    return Math.min(Math.max(Math.min(...needs), floor), budget / needs.length);
  }

  /** The lanes to run this tick, in the order chosen; `present`: tenants with jobs in the worker, lanes or not. */
  plan(work: readonly PendingWork[], present: Iterable<string> = []): PlannedLane[] {
    const { budget } = this.options;
    const tenants = new Map<string, PendingWork[]>();
    for (const w of work) if (w.lanes.length > 0) tenants.set(w.tenant, [...(tenants.get(w.tenant) ?? []), w]);
    for (const tenant of this.deficits.keys()) if (!tenants.has(tenant)) this.deficits.delete(tenant);
    this.order = [...this.order.filter((t) => tenants.has(t)), ...[...tenants.keys()].filter((t) => !this.order.includes(t))];
    if (this.order.length === 0) return [];

    // A lane costs at most the budget: an oversized one must be affordable too.
    const cost = (c: number) => Math.min(c, budget);
    const needOf = (jobs: PendingWork[]) => jobs.reduce((sum, w) => sum + w.lanes.reduce((s, l) => s + cost(l.cost), 0), 0);
    const idle = new Set([...present].filter((t) => !tenants.has(t)));
    const q = this.quantum([...this.order.map((t) => needOf(tenants.get(t)!)), ...[...idle].map(() => 0)]);
    const earn = () => {
      for (const tenant of this.order) {
        // Earned; what a tenant cut short by a full tick keeps is at most one quantum and its largest lane.
        const largest = Math.max(...tenants.get(tenant)!.flatMap((w) => w.lanes.map((l) => cost(l.cost))));
        this.deficits.set(tenant, Math.min((this.deficits.get(tenant) ?? 0) + q, q + largest));
      }
    };

    const planned: PlannedLane[] = [];
    // Rounds until something runs (with many tenants a quantum may be less than any one lane).
    while (planned.length === 0) {
      earn();
      let used = 0;
      // Tenants whose whole need their credit covers go first, so a full tick never cuts a light
      // tenant's step short; the rest take their round-robin turns.
      const covered = (t: string) => needOf(tenants.get(t)!) <= this.deficits.get(t)!;
      const turns = [...this.order.filter(covered), ...this.order.filter((t) => !covered(t))];
      for (const tenant of turns) {
        let deficit = this.deficits.get(tenant)!;
        // The tenant's jobs with the least work left in their step first (they finish it soonest).
        const jobs = [...tenants.get(tenant)!].sort((a, b) => needOf([a]) - needOf([b]));
        let left = jobs.reduce((n, w) => n + w.lanes.length, 0);
        let full = false;
        spend: for (const w of jobs) {
          for (const lane of w.lanes) {
            if (cost(lane.cost) > deficit) break spend;
            if (used > 0 && used + lane.cost > budget) {
              full = true;
              break spend;
            }
            planned.push({ job: w.job, index: lane.index });
            deficit -= cost(lane.cost);
            used += lane.cost;
            left--;
          }
        }
        // A tenant whose work all runs starts its next turn afresh (DRR: an emptied queue keeps no credit).
        this.deficits.set(tenant, left === 0 ? 0 : deficit);
        if (full) break;
      }
    }
    this.order.push(this.order.shift()!);
    return planned;
  }
}
