/**
 * Whether the worker raises its model thread's priority (MODEL_THREAD_NICE). A model thread
 * above normal priority keeps the farm's other work on the same cores from preempting it — but
 * when the model's threads can take every core (ORT_THREADS=0 lets onnxruntime use them all),
 * they would starve that work instead during each call: the worker's own thread, and a Redis or
 * API beside it (a starved Redis replica falls behind, and a failover then loses more). So a
 * higher priority is asked for only while the model's threads leave a core free; a lower one
 * (a positive nice value) always.
 */
import { ThreadPriority, describePriority } from '@farm/pipeline';

export type PriorityPlan = { nice: number } | { normal: string };

export function modelThreadPriority(nice: number, ortThreads: number, cores: number): PriorityPlan {
  if (nice === 0) return { normal: 'MODEL_THREAD_NICE=0' };
  if (nice > 0) return { nice };
  if (ortThreads === 0) return { normal: `ORT_THREADS=0 lets onnxruntime take every core, and the model's threads above normal priority would starve the rest` };
  if (ortThreads >= cores) return { normal: `ORT_THREADS=${ortThreads} takes every core of ${cores}, and the model's threads above normal priority would starve the rest` };
  return { nice };
}

/** For start-up lines: the plan, and what became of it once the model loaded. */
export function priorityInWords(plan: PriorityPlan, outcome: ThreadPriority | null): string {
  if ('normal' in plan) return `model thread at normal priority (${plan.normal})`;
  return outcome ? describePriority(outcome) : 'model thread at normal priority (none asked for)';
}
