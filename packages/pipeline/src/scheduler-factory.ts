/**
 * Picks the scheduler named by a model's scheduler/scheduler_config.json (or the SCHEDULER
 * setting) and resolves the config for it as diffusers' `from_config` would: the class's own
 * defaults under the file's values.
 */
import { DDIMScheduler, DDIM_DEFAULTS } from './ddim-scheduler';
import { EulerAncestralScheduler } from './euler-ancestral-scheduler';
import { EULER_DEFAULTS, EulerScheduler } from './euler-scheduler';
import { LCMScheduler, LCM_DEFAULTS } from './lcm-scheduler';
import { SchedulerConfig, UnsupportedSchedulerError, resolveSchedulerConfig } from './noise-schedule';
import type { Scheduler, SchedulerName } from './scheduler';

export const SCHEDULER_NAMES: readonly SchedulerName[] = ['euler', 'euler-ancestral', 'lcm', 'ddim'];

const BY_CLASS: Record<string, SchedulerName> = {
  LCMScheduler: 'lcm',
  DDIMScheduler: 'ddim',
  EulerDiscreteScheduler: 'euler',
  EulerAncestralDiscreteScheduler: 'euler-ancestral',
  // SD 1.5 / 2.1-base ship PNDM (PLMS); DDIM is its stateless first-order counterpart (ddim-scheduler.ts).
  PNDMScheduler: 'ddim',
};

export function createScheduler(raw: Partial<SchedulerConfig>, override?: SchedulerName): Scheduler {
  const className = raw._class_name ?? '';
  const name = override ?? BY_CLASS[className];
  if (!name) throw new UnsupportedSchedulerError(`scheduler_config.json: ${className || 'a scheduler without _class_name'} is not supported (set SCHEDULER to one of ${SCHEDULER_NAMES.join(', ')})`);
  switch (name) {
    case 'euler':
      return new EulerScheduler(resolveSchedulerConfig(raw, EULER_DEFAULTS));
    case 'euler-ancestral':
      return new EulerAncestralScheduler(resolveSchedulerConfig(raw, EULER_DEFAULTS));
    case 'lcm':
      return new LCMScheduler(resolveSchedulerConfig(raw, LCM_DEFAULTS));
    case 'ddim':
      return new DDIMScheduler(resolveSchedulerConfig(raw, DDIM_DEFAULTS));
  }
}
