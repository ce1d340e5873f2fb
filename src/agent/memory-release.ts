// When the agent gives memory back to the OS (the addon's releaseMemory: a full compacting V8
// collection that uncommits the freed heap, then malloc_trim), driven by the reconciler's sync
// reports:
// - after a sync that recomputed everything (the first one, a relist, a Node change), at most once
//   per RELEASE_MEMORY_INTERVAL_MS: such a sync allocates about as much again as the state it
//   leaves, and V8 keeps that heap committed until the process has idled for a while;
// - once changes stop for RELEASE_IDLE_MS after incremental syncs (at most once per
//   RELEASE_IDLE_INTERVAL_MS): their garbage would otherwise keep ~15-20 MB more committed;
// - when changes never stop for that long (a busy cluster), once per RELEASE_BUSY_INTERVAL_MS
//   after an incremental sync: V8 grows its young generation under steady churn and keeps it.
// Each release runs on the macrotask after the sync's report: by then the sync's plan and
// intermediate state are garbage too.
import type { Logger } from 'pino';

/** The shortest time between two releases after full syncs (each blocks for a full collection). */
export const RELEASE_MEMORY_INTERVAL_MS = 60_000;
/** Quiet time after an incremental sync before memory is released, and the shortest time between two such releases. */
export const RELEASE_IDLE_MS = 5_000;
export const RELEASE_IDLE_INTERVAL_MS = 10_000;
/**
 * While changes keep coming: the longest time without a release (each blocks the loop for a full
 * collection, ~50-80 ms at 10,000 Services, so a change arriving then waits that much longer).
 */
export const RELEASE_BUSY_INTERVAL_MS = 60_000;

export interface MemoryReleaseOptions {
  /** Gives memory back (the addon's releaseMemory). */
  release: () => void;
  logger: Logger;
  /** RELEASE_IDLE_MS, RELEASE_IDLE_INTERVAL_MS and RELEASE_BUSY_INTERVAL_MS, for tests. */
  timing?: { quietMs: number; intervalMs: number; busyIntervalMs?: number };
}

type Occasion = 'full' | 'idle' | 'busy';
const OCCASION: Record<Occasion, string> = { full: 'after a full sync', idle: 'once changes stopped', busy: 'while changes go on' };

export class MemoryReleaseScheduler {
  /** When release last ran (performance.now()). */
  private releasedAt = -Infinity;
  /** Armed after each sync: fires once changes have stopped for RELEASE_IDLE_MS. */
  private idleTimer: NodeJS.Timeout | undefined;
  /** Syncs since the last release: nothing to give back without them. */
  private syncsSinceRelease = 0;
  private stopped = false;

  constructor(private readonly opts: MemoryReleaseOptions) {}

  /** Called with every sync report (the reconciler's onSync). */
  onSync(report: { incremental: boolean }): void {
    if (this.stopped) return;
    this.syncsSinceRelease++;
    if (!report.incremental) setImmediate(() => this.release('full'));
    else if (performance.now() - this.releasedAt >= this.busyIntervalMs()) setImmediate(() => this.release('busy'));
    // Also after a full sync: its own release may have been too soon after the last one.
    this.armIdle(this.opts.timing?.quietMs ?? RELEASE_IDLE_MS);
  }

  /**
   * Called when a sync begins (the reconciler's onSyncStart). A full sync gives the event loop
   * turns while it runs: the quiet release waits for its report (which arms it again), so it
   * never lands in the middle of the sync and leaves the sync's own garbage to a later release.
   */
  onSyncStart(): void {
    clearTimeout(this.idleTimer);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.idleTimer);
  }

  private armIdle(ms: number): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.release('idle'), ms);
    this.idleTimer.unref();
  }

  private busyIntervalMs(): number {
    return this.opts.timing?.busyIntervalMs ?? RELEASE_BUSY_INTERVAL_MS;
  }

  private release(occasion: Occasion): void {
    if (this.stopped || this.syncsSinceRelease === 0) return;
    const since = performance.now() - this.releasedAt;
    const interval =
      occasion === 'full' ? RELEASE_MEMORY_INTERVAL_MS : occasion === 'busy' ? this.busyIntervalMs() : (this.opts.timing?.intervalMs ?? RELEASE_IDLE_INTERVAL_MS);
    if (since < interval) {
      // Quiet, but too soon after the last release: try again when the interval is over.
      if (occasion === 'idle') this.armIdle(interval - since);
      return;
    }
    this.syncsSinceRelease = 0;
    const what = OCCASION[occasion];
    const t0 = performance.now();
    const rssBefore = process.memoryUsage.rss();
    try {
      this.opts.release();
    } catch (err) {
      this.opts.logger.warn({ err }, `releasing memory ${what} failed`);
    }
    this.releasedAt = performance.now();
    const mb = (bytes: number) => Math.round(bytes / 104857.6) / 10;
    // Info: rare (after full syncs, once changes stop, or once a minute of continuous changes;
    // never more than every 10 s), and what an operator looking at the pod's memory wants to see.
    const fields = { durationMs: Math.round(this.releasedAt - t0), rssBeforeMb: mb(rssBefore), rssAfterMb: mb(process.memoryUsage.rss()) };
    this.opts.logger.info(fields, `released memory ${what}`);
  }
}
