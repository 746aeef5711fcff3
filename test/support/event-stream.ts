/** Reads a Server-Sent Events stream as it arrives, with plain fetch: each event when it comes, or all of them to the end. */
import type { TestApi } from './harness';

export interface ServerEvent {
  event: string;
  data: any;
}

export class EventStreamReader {
  private buffer = '';
  private readonly events: ServerEvent[] = [];
  private ended = false;
  private wake: (() => void) | null = null;

  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
  ) {
    void this.pump();
  }

  static async open(api: TestApi, path: string): Promise<EventStreamReader> {
    const response = await api.fetch(path);
    return new EventStreamReader(response, response.body!.getReader());
  }

  private async pump(): Promise<void> {
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await this.reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) break;
      this.buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block);
        const data = /^data: (.*)$/m.exec(block);
        if (event && data) this.events.push({ event: event[1], data: JSON.parse(data[1]) });
      }
      this.wake?.();
    }
    this.ended = true;
    this.wake?.();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => (this.wake = resolve));
  }

  /** Resolves with the first event named `name` (received so far or later); rejects if the stream ends first. */
  async waitFor(name: string): Promise<ServerEvent> {
    for (;;) {
      const found = this.events.find((e) => e.event === name);
      if (found) return found;
      if (this.ended) throw new Error(`the stream ended without a "${name}" event: ${this.events.map((e) => e.event).join(', ')}`);
      await this.changed();
    }
  }

  /** Every event, once the stream has ended. */
  async all(): Promise<ServerEvent[]> {
    while (!this.ended) await this.changed();
    return this.events;
  }
}
