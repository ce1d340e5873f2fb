// One watch stream of the fake API server: newline-delimited JSON events on a chunked 200
// response. Starts with the current objects (no resourceVersion) or replays history after the
// given resourceVersion, then follows live changes; 410 Gone as an ERROR event when that
// history is gone; bookmarks; server-side timeoutSeconds; and test faults (stall, destroy).
import type http from 'node:http';
import { eventForSelector, resourceOf } from './fake-apiserver-state.js';
import type { FakeKind, FakeState, HistoryEvent, WatchEvent } from './fake-apiserver-state.js';
import type { LabelSelector } from './fake-label-selector.js';

export interface FakeWatchOptions {
  bookmarkIntervalMs: number;
  timeoutSeconds: number;
  onClose: () => void;
}

export function statusBody(code: number, reason: string, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export class FakeWatch {
  private stalled = false;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly state: FakeState,
    readonly kind: FakeKind,
    private readonly selector: LabelSelector,
    private readonly res: http.ServerResponse,
    private readonly opts: FakeWatchOptions,
  ) {
    res.on('close', () => this.cleanup());
  }

  /** fromRv undefined: send every current object as ADDED first. */
  start(fromRv: number | undefined): void {
    this.res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    this.res.flushHeaders();
    if (fromRv === undefined) {
      for (const object of this.state.list(this.kind, this.selector)) this.write({ type: 'ADDED', object });
    } else {
      const backlog = this.state.eventsSince(this.kind, fromRv);
      if (backlog === undefined) {
        const message = `too old resource version: ${fromRv} (${this.state.resourceVersion})`;
        this.writeRaw({ type: 'ERROR', object: statusBody(410, 'Expired', message) });
        this.res.end();
        return;
      }
      for (const event of backlog) this.deliver(event);
    }
    this.unsubscribe = this.state.subscribe((event) => {
      if (event.kind === this.kind) this.deliver(event);
    });
    if (this.opts.bookmarkIntervalMs > 0) {
      this.timers.push(setInterval(() => this.bookmark(), this.opts.bookmarkIntervalMs));
    }
    if (this.opts.timeoutSeconds > 0) {
      this.timers.push(setTimeout(() => this.res.end(), this.opts.timeoutSeconds * 1000));
    }
  }

  /** Keeps the connection open but sends nothing more: a silently dead stream. */
  stall(): void {
    this.stalled = true;
  }

  destroy(): void {
    this.res.destroy();
    this.cleanup();
  }

  private deliver(event: HistoryEvent): void {
    const visible = eventForSelector(event, this.selector);
    if (visible) this.write(visible);
  }

  private bookmark(): void {
    const info = resourceOf(this.kind);
    const object = { kind: this.kind, apiVersion: info.apiVersion, metadata: { resourceVersion: String(this.state.resourceVersion) } };
    this.writeRaw({ type: 'BOOKMARK', object });
  }

  private write(event: WatchEvent): void {
    this.writeRaw(event);
  }

  private writeRaw(event: { type: string; object: object }): void {
    if (this.stalled || this.closed || this.res.destroyed) return;
    this.res.write(`${JSON.stringify(event)}\n`);
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    for (const timer of this.timers) clearTimeout(timer);
    this.opts.onClose();
  }
}
