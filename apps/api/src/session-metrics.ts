/** Live sessions as the API sees them: sockets open, frames and tiles sent, update → frame latency, updates coalesced or refused. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class SessionMetrics {
  readonly open: Gauge;
  /** Frames sent, `whole` (one tile covering the image) or `partial` (the changed tiles only). */
  readonly frames: Counter<'kind'>;
  readonly tiles: Counter;
  readonly bytes: Counter;
  /** Frames and previews not sent to a client that was not reading. */
  readonly dropped: Counter;
  /** From an update's arrival to the first frame that reflects it. */
  readonly latency: Histogram;
  /** Updates `accepted` (written for the worker), `coalesced` into a later write, or `rejected` (bad input). */
  readonly updates: Counter<'outcome'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.open = new Gauge({ name: 'farm_sessions_open', help: 'Session sockets open on this API replica', registers });
    this.frames = new Counter({ name: 'farm_session_frames_total', help: 'Session frames sent: whole or partial (changed tiles only)', labelNames: ['kind'], registers });
    this.tiles = new Counter({ name: 'farm_session_tiles_total', help: 'Tiles sent in session frames', registers });
    this.bytes = new Counter({ name: 'farm_session_frame_bytes_total', help: 'Bytes of tile images sent in session frames', registers });
    this.dropped = new Counter({ name: 'farm_session_frames_dropped_total', help: 'Frames and previews dropped for clients that did not read', registers });
    this.latency = new Histogram({
      name: 'farm_session_update_latency_seconds',
      help: 'From a session update to the first frame reflecting it',
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.updates = new Counter({ name: 'farm_session_updates_total', help: 'Session updates by outcome: accepted, coalesced, rejected', labelNames: ['outcome'], registers });
  }
}
