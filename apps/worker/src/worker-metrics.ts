/** The worker's Prometheus metrics: latency split queue/compute, outcomes, throughput, batching. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS, ModelQueues, createRegistry, registerQueueDepth } from '@farm/platform';
import type { BusyMeter, TickReport } from '@farm/pipeline';
import type { FrameCost } from './live-session';

/** Session frames' phases take milliseconds to seconds. */
const FRAME_PHASE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class WorkerMetrics {
  readonly registry: Registry;
  private readonly latency: Histogram<'type'>;
  private readonly queueWait: Histogram<'type'>;
  private readonly compute: Histogram<'type'>;
  private readonly outcomes: Counter<'type' | 'outcome'>;
  private readonly failures: Counter<'type' | 'reason'>;
  private readonly images: Counter;
  private readonly steps: Counter;
  private readonly batchSize: Histogram;
  private readonly lanes: Histogram;
  private readonly editSources: Counter<'source'>;
  private readonly sessionRenders: Counter<'kind'>;
  private readonly sessionSuperseded: Counter;
  private readonly framePhases: Histogram<'kind' | 'phase'>;
  private readonly frameRecomputed: Histogram<'kind'>;

  constructor(workerId: string, queues: ModelQueues, inFlight: () => number, sessions: () => number, busy: BusyMeter) {
    // Every series carries the worker's id and the model it serves (dashboards filter on both).
    const registers = [(this.registry = createRegistry({ app: 'worker', worker: workerId, model: queues.defaultModel }))];
    registerQueueDepth(this.registry, queues);
    const byType = { labelNames: ['type'] as const, buckets: LATENCY_BUCKETS, registers };
    this.latency = new Histogram({ name: 'farm_job_latency_seconds', help: 'Submission to finish, by job type', ...byType });
    this.queueWait = new Histogram({ name: 'farm_job_queue_wait_seconds', help: 'Submission to start of work, by job type', ...byType });
    this.compute = new Histogram({ name: 'farm_job_compute_seconds', help: 'Start of work to result stored, by job type', ...byType });
    this.outcomes = new Counter({ name: 'farm_jobs_total', help: 'Jobs finished by this worker, by type and outcome', labelNames: ['type', 'outcome'], registers });
    this.failures = new Counter({ name: 'farm_job_failures_total', help: 'Failed attempts by type and reason code (retried ones included)', labelNames: ['type', 'reason'], registers });
    this.images = new Counter({ name: 'farm_images_total', help: 'Images produced', registers });
    this.steps = new Counter({ name: 'farm_denoise_steps_total', help: 'Denoising steps advanced (one per job per tick)', registers });
    this.editSources = new Counter({ name: 'farm_edit_sources_total', help: 'Edit sources by where they came from (memory/cache hits, reencoded misses, uploads)', labelNames: ['source'], registers });
    this.batchSize = new Histogram({ name: 'farm_unet_batch_size', help: 'Lanes per UNet call', buckets: [1, 2, 4, 8, 16, 32, 64], registers });
    this.lanes = new Histogram({ name: 'farm_stream_batch_lanes', help: 'Lanes per engine tick (stream-batch occupancy)', buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers });
    let busyReported = 0;
    new Counter({
      name: 'farm_model_busy_seconds_total',
      help: 'Time with a model call under way (overlapping calls once); its rate is the busy fraction, on a GPU its utilisation',
      registers,
      collect() {
        const busyMs = busy.busyMs();
        this.inc((busyMs - busyReported) / 1000);
        busyReported = busyMs;
      },
    });
    let partsReported = new Map<string, number>();
    new Counter({
      name: 'farm_model_call_seconds_total',
      help: 'Time in model calls by model part (unet, vae_decoder, vae_encoder, text_encoder, controlnet), each call counted whole',
      labelNames: ['part'],
      registers,
      collect() {
        for (const [part, ms] of busy.partMs()) this.inc({ part }, (ms - (partsReported.get(part) ?? 0)) / 1000);
        partsReported = new Map(busy.partMs());
      },
    });
    new Gauge({ name: 'farm_jobs_in_flight', help: 'Jobs this worker holds', registers, collect() { this.set(inFlight()); } });
    new Gauge({ name: 'farm_sessions_hosted', help: 'Live sessions this worker renders', registers, collect() { this.set(sessions()); } });
    this.sessionRenders = new Counter({ name: 'farm_session_renders_total', help: 'Session renders by kind: full (generation), edit (the changed part), none (nothing changed)', labelNames: ['kind'], registers });
    this.framePhases = new Histogram({
      name: 'farm_session_frame_seconds',
      help: 'Session frames by kind (full, edit) and phase: render (masks, denoising in the shared ticks with its waits, decoding; a full frame its encoding too), encode (its tiles), publish (to Redis)',
      labelNames: ['kind', 'phase'],
      buckets: FRAME_PHASE_BUCKETS,
      registers,
    });
    this.frameRecomputed = new Histogram({
      name: 'farm_session_frame_recomputed_ratio',
      help: 'Share of the latent canvas a session frame denoised, by kind',
      labelNames: ['kind'],
      buckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1],
      registers,
    });
    this.sessionSuperseded = new Counter({ name: 'farm_session_updates_superseded_total', help: 'Session updates never rendered because a newer one came before their turn', registers });
  }

  sessionRender(kind: string): void {
    this.sessionRenders.inc({ kind });
  }

  sessionFrame({ kind, renderMs, encodeMs, publishMs, recomputed }: FrameCost): void {
    this.framePhases.observe({ kind, phase: 'render' }, renderMs / 1000);
    if (kind === 'edit') this.framePhases.observe({ kind, phase: 'encode' }, encodeMs / 1000);
    this.framePhases.observe({ kind, phase: 'publish' }, publishMs / 1000);
    this.frameRecomputed.observe({ kind }, recomputed);
  }

  sessionUpdatesSuperseded(count: number): void {
    this.sessionSuperseded.inc(count);
  }

  editSource(kind: string): void {
    this.editSources.inc({ source: kind });
  }

  tick(report: TickReport): void {
    for (const size of report.batchSizes) this.batchSize.observe(size);
    this.lanes.observe(report.lanes);
    this.steps.inc(report.jobs);
  }

  succeeded(type: string, timings: { queueMs: number; computeMs: number; totalMs: number }): void {
    this.outcomes.inc({ type, outcome: 'succeeded' });
    this.latency.observe({ type }, timings.totalMs / 1000);
    this.queueWait.observe({ type }, timings.queueMs / 1000);
    this.compute.observe({ type }, timings.computeMs / 1000);
    this.images.inc();
  }

  failed(type: string, reason: string, final: boolean): void {
    this.failures.inc({ type, reason });
    if (final) this.outcomes.inc({ type, outcome: 'failed' });
  }
}
