// The reconciler: turns the object store into programmed maps. It waits until every source has
// synced (never programs a partial view), coalesces bursts of changes into one sync per
// min-sync period, and re-reads the maps on a timer to repair drift.
import type { Logger } from 'pino';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { DesiredState, ModelConfig, ModelError, ModelResult, ModelInput } from '../model/types.js';

/** What the reconciler reads: the object store (src/k8s/store.ts) satisfies it. */
export interface ObjectSnapshotSource {
  isSynced(): boolean;
  snapshot(): { services: V1Service[]; endpointSlices: V1EndpointSlice[]; nodes: V1Node[] };
  onChange(listener: () => void): () => void;
}

/** What one apply changed (the service-table writer's ApplyResult carries both). */
export interface ApplyCounts {
  /** Service ports by what the apply did to them. */
  services: { added: number; updated: number; removed: number; unchanged: number };
  /** Map elements written and deleted. */
  ops: { writes: number; deletes: number };
}

export interface ApplyOutcome extends Partial<ApplyCounts> {
  errors: { key?: string; message: string }[];
}

/** What the reconciler writes through: the service-table writer (src/dataplane) satisfies it. */
export interface DesiredStateSink {
  apply(state: DesiredState): ApplyOutcome | Promise<ApplyOutcome>;
  /** Re-read the maps so drift (someone else's writes, a lost update) is repaired. */
  resync?(): void | Promise<void>;
}

export interface SyncReport {
  startedAt: Date;
  durationMs: number;
  /** Service ports, frontends and backend slots in the applied state. */
  services: number;
  frontends: number;
  backends: number;
  modelErrors: ModelError[];
  applyErrors: ApplyOutcome['errors'];
  /** What the apply changed, when the sink reports it (absent when the sync threw). */
  applied?: ApplyCounts;
  full: boolean;
}

export interface ReconcilerOptions {
  source: ObjectSnapshotSource;
  sink: DesiredStateSink;
  compute: (input: ModelInput) => ModelResult;
  nodeName: string;
  modelConfig: ModelConfig;
  minSyncPeriodMs: number;
  fullResyncPeriodMs: number;
  logger: Logger;
  /** Called after every sync, for metrics and the admin status. */
  onSync?: (report: SyncReport) => void;
}

/** The sink's counts, copied (only the fields the report promises), when it gave both. */
function appliedCounts(outcome: ApplyOutcome): { applied?: ApplyCounts } {
  const { services: s, ops: o } = outcome;
  if (!s || !o) return {};
  return {
    applied: {
      services: { added: s.added, updated: s.updated, removed: s.removed, unchanged: s.unchanged },
      ops: { writes: o.writes, deletes: o.deletes },
    },
  };
}

export class Reconciler {
  private timer: NodeJS.Timeout | undefined;
  private fullTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private pending = false;
  private pendingFull = false;
  private lastSyncEnd = 0;
  private stopped = false;
  /** Model errors already logged, so a broken object is reported once, not on every sync. */
  private reportedErrors = new Set<string>();
  lastReport: SyncReport | undefined;
  syncCount = 0;

  constructor(private readonly opts: ReconcilerOptions) {}

  start(): void {
    this.unsubscribe = this.opts.source.onChange(() => this.schedule(false));
    this.fullTimer = setInterval(() => this.schedule(true), this.opts.fullResyncPeriodMs);
    this.fullTimer.unref();
    this.schedule(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
    clearInterval(this.fullTimer);
    await this.running;
  }

  /** True once a sync has programmed a complete (all sources synced) view. */
  get synced(): boolean {
    return this.syncCount > 0;
  }

  /** Requests a sync; bursts within the min-sync period collapse into one. */
  schedule(full: boolean): void {
    if (this.stopped) return;
    this.pending = true;
    this.pendingFull ||= full;
    if (this.timer || this.running) return;
    const wait = Math.max(0, this.lastSyncEnd + this.opts.minSyncPeriodMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.runPending().then((retry) => {
        this.running = undefined;
        if (retry) this.schedule(false);
      });
    }, wait);
  }

  /** Runs a sync now (tests, admin). Resolves when it finished. */
  async syncNow(full = false): Promise<SyncReport | undefined> {
    await this.running;
    this.pending = true;
    this.pendingFull ||= full;
    await this.runPending();
    return this.lastReport;
  }

  /** Returns true when another sync should follow (changes arrived meanwhile, or a retry). */
  private async runPending(): Promise<boolean> {
    if (!this.pending || this.stopped) return false;
    if (!this.opts.source.isSynced()) {
      // Not every source has listed yet: programming now could delete services that are merely
      // not known yet. The source's change events re-schedule us once it syncs.
      this.opts.logger.debug('sources not synced yet; holding the first apply');
      return false;
    }
    const full = this.pendingFull;
    this.pending = false;
    this.pendingFull = false;
    const startedAt = new Date();
    const t0 = performance.now();
    let report: SyncReport;
    try {
      if (full) await this.opts.sink.resync?.();
      const snap = this.opts.source.snapshot();
      const result = this.opts.compute({ ...snap, nodeName: this.opts.nodeName, config: this.opts.modelConfig });
      this.logNewModelErrors(result.errors);
      const outcome = await this.opts.sink.apply(result.state);
      for (const e of outcome.errors) this.opts.logger.error({ service: e.key }, `apply failed: ${e.message}`);
      let frontends = 0;
      let backends = 0;
      for (const sp of result.state.services.values()) {
        frontends += sp.frontends.length;
        backends += sp.clusterBackends.length + sp.localBackends.length;
      }
      report = {
        startedAt,
        durationMs: performance.now() - t0,
        services: result.state.services.size,
        frontends,
        backends,
        modelErrors: result.errors,
        applyErrors: outcome.errors,
        ...appliedCounts(outcome),
        full,
      };
      if (outcome.errors.length > 0) this.pending = true; // retry on the next period
    } catch (err) {
      // Never let one bad sync kill the loop: report it and retry after the min-sync period.
      this.opts.logger.error({ err }, 'sync failed');
      report = { startedAt, durationMs: performance.now() - t0, services: 0, frontends: 0, backends: 0, modelErrors: [], applyErrors: [{ message: (err as Error).message }], full };
      this.pending = true;
    }
    this.lastSyncEnd = Date.now();
    if (report.applyErrors.length === 0) this.syncCount++;
    this.lastReport = report;
    this.opts.logger.debug({ durationMs: report.durationMs.toFixed(2), services: report.services, full }, 'synced');
    this.opts.onSync?.(report);
    return this.pending;
  }

  private logNewModelErrors(errors: ModelError[]): void {
    const current = new Set<string>();
    for (const e of errors) {
      const id = `${e.kind}/${e.object}/${e.field}/${JSON.stringify(e.value)}`;
      current.add(id);
      if (!this.reportedErrors.has(id)) {
        this.opts.logger.warn({ kind: e.kind, object: e.object, field: e.field, value: e.value }, e.message);
      }
    }
    this.reportedErrors = current;
  }
}
