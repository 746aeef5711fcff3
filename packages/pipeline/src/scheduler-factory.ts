/** Picks the scheduler named by a model's scheduler/scheduler_config.json. */
import { DDIMScheduler } from './ddim-scheduler';
import { LCMScheduler } from './lcm-scheduler';
import { SchedulerConfig, resolveSchedulerConfig } from './noise-schedule';
import type { Scheduler } from './scheduler';

export type SchedulerName = 'lcm' | 'ddim';

const BY_CLASS: Record<string, SchedulerName> = {
  LCMScheduler: 'lcm',
  DDIMScheduler: 'ddim',
  // Non-distilled models often ship PNDM/Euler configs; DDIM is the deterministic stand-in.
  PNDMScheduler: 'ddim',
  EulerDiscreteScheduler: 'ddim',
  EulerAncestralDiscreteScheduler: 'ddim',
};

export function createScheduler(raw: Partial<SchedulerConfig>, override?: SchedulerName): Scheduler {
  const config = resolveSchedulerConfig(raw);
  const name = override ?? BY_CLASS[config._class_name ?? ''] ?? 'lcm';
  return name === 'ddim' ? new DDIMScheduler(config) : new LCMScheduler(config);
}
