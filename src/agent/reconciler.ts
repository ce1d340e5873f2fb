// The reconciler: turns the object store into programmed maps. It waits until every source has
// synced (never programs a partial view), coalesces bursts of changes into one sync per
// min-sync period, and re-reads the maps on a timer to repair drift.
//
// With an incremental model, a sync after Service or EndpointSlice changes recomputes only the
// Services those keys touch and tells the sink which service ports changed, so an endpoint
// change costs one Service, not the cluster. Everything else — the first sync, a Node change,
// the full-resync timer, the sync after a failed one — recomputes and re-diffs everything,
// which also repairs anything an incremental step could have missed.
import type { Logger } from 'pino';
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { IncrementalResult, ModelChanges } from '../model/incremental.js';
import { StateTotals } from './state-totals.js';
import { runSteps, runStepsYielding, type Steps, type Turn } from '../model/steps.js';
import type { DesiredState, ModelConfig, ModelError, ModelResult, ModelInput } from '../model/types.js';

/** One change notification of the source (the store's StoreChange). */
export interface SourceChange {
  kind: string;
  reason: string;
  keys: readonly string[];
}

/** What the reconciler reads: the object store (src/k8s/store.ts) satisfies it. */
export interface ObjectSnapshotSource {
  isSynced(): boolean;
  snapshot(): { services: V1Service[]; endpointSlices: V1EndpointSlice[]; nodes: V1Node[] };
  /** `change` says what changed; a listener called without one makes the next sync full. */
  onChange(listener: (change?: SourceChange) => void): () => void;
  /** The current object of a kind by key (needed for incremental syncs). */
  get?(kind: 'Service' | 'EndpointSlice', key: string): unknown;
}

/** The model with memory (src/model/incremental.ts satisfies it). */
export interface StatefulModel {
  readonly ready: boolean;
  full(input: ModelInput): IncrementalResult;
  /** full(), pausing now and then (src/model/steps.ts): used when the reconciler yields. */
  fullSteps?(input: ModelInput): Steps<IncrementalResult>;
  update(changes: ModelChanges): IncrementalResult;
}

/** What one apply changed (the service-table writer's ApplyResult carries both). */
export interface ApplyCounts {
  /** Service ports by what the apply did to them. */
  services: { added: number; updated: number; removed: number; unchanged: number };
  /** Map elements written and deleted. */
  ops: { writes: number; deletes: number };
}

export interface ApplyOutcome extends Partial<ApplyCounts> {
  /** `map` and `capacity`: the error is a full map (the writer's ApplyError). */
  errors: { key?: string; map?: string; capacity?: number; message: string }[];
}

/** What the reconciler writes through: the service-table writer (src/dataplane) satisfies it. */
export interface DesiredStateSink {
  /** `hint.changed`: only these service-port keys differ from the last successful apply. */
  apply(state: DesiredState, hint?: { changed: ReadonlySet<string> }): ApplyOutcome | Promise<ApplyOutcome>;
  /** apply(), pausing now and then (src/model/steps.ts): used when the reconciler yields. */
  applySteps?(state: DesiredState, hint?: { changed: ReadonlySet<string> }): Steps<ApplyOutcome>;
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
  /** The maps were re-read first (full-resync timer). */
  full: boolean;
  /** Only the Services the changes touched were recomputed, and only their ports re-diffed. */
  incremental: boolean;
}

export interface ReconcilerOptions {
  source: ObjectSnapshotSource;
  sink: DesiredStateSink;
  /** Either a stateless model (everything recomputed on every sync) or a stateful one. */
  compute?: (input: ModelInput) => ModelResult;
  model?: StatefulModel;
  nodeName: string;
  modelConfig: ModelConfig;
  minSyncPeriodMs: number;
  fullResyncPeriodMs: number;
  logger: Logger;
  /** Called after every sync, for metrics and the admin status. */
  onSync?: (report: SyncReport) => void;
  /** Called when a sync begins (health watches for one that never ends). */
  onSyncStart?: () => void;
  /**
   * Give the event loop a turn after each `yieldEveryMs` of a full model or an apply (0: at
   * every pause point), so the admin socket, metrics and watch events are served during a long
   * sync; changes that arrive meanwhile wait for the next sync. Absent: a sync runs whole.
   */
  yieldEveryMs?: number;
  /** How a turn is given (default: setImmediate). Tests observe the turns through it. */
  turn?: Turn;
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

/** The longest wait before retrying a failed sync. */
export const RETRY_MAX_MS = 30_000;

export class Reconciler {
  private timer: { cancel(): void } | undefined;
  private fullTimer: NodeJS.Timeout | undefined;
  private readonly totals = new StateTotals();
  private unsubscribe: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /**
   * A sync is between its start and its report (it may pause: yieldEveryMs). Set before it first
   * pauses, whoever started it (schedule or syncNow): a change meanwhile only marks it pending.
   */
  private syncing = false;
  private pending = false;
  private pendingFull = false;
  private lastSyncEnd = 0;
  private stopped = false;
  /** Service and EndpointSlice keys changed since the last sync. */
  private dirty = { services: new Set<string>(), endpointSlices: new Set<string>() };
  /** The next sync must recompute everything (Node change, unknown change, failure). */
  private needFull = true;
  /** Consecutive syncs with apply errors: the retry waits min-sync × 2^(failures-1), at most RETRY_MAX_MS. */
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Service-port keys whose apply failed: the next incremental sync plans them again. */
  private retryKeys = new Set<string>();
  /** Model errors already logged, so a broken object is reported once, not on every sync. */
  private reportedErrors = new Set<string>();
  lastReport: SyncReport | undefined;
  syncCount = 0;

  constructor(private readonly opts: ReconcilerOptions) {}

  start(): void {
    this.unsubscribe = this.opts.source.onChange((change) => {
      this.noteChange(change);
      this.schedule(false);
    });
    this.fullTimer = setInterval(() => this.schedule(true), this.opts.fullResyncPeriodMs);
    this.fullTimer.unref();
    this.schedule(false);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.timer?.cancel();
    clearTimeout(this.retryTimer);
    clearInterval(this.fullTimer);
    await this.running;
  }

  /**
   * A new model configuration (e.g. the host's addresses changed, moving the NodePort
   * frontends): every Service is recomputed by the next sync.
   */
  setModelConfig(config: ModelConfig): void {
    this.opts.modelConfig = config;
    this.needFull = true;
    this.schedule(false);
  }

  /** True once a sync has programmed a complete (all sources synced) view. */
  get synced(): boolean {
    return this.syncCount > 0;
  }

  private noteChange(change: SourceChange | undefined): void {
    if (change?.kind === 'Service') for (const k of change.keys) this.dirty.services.add(k);
    else if (change?.kind === 'EndpointSlice') for (const k of change.keys) this.dirty.endpointSlices.add(k);
    // A Node (addresses, zone) and the first sync of a kind affect every Service.
    if (!change || change.kind === 'Node' || change.reason === 'synced') this.needFull = true;
  }

  /** Requests a sync; bursts within the min-sync period collapse into one. */
  schedule(full: boolean): void {
    if (this.stopped) return;
    this.pending = true;
    this.pendingFull ||= full;
    if (this.timer || this.running || this.syncing) return;
    const wait = Math.max(0, this.lastSyncEnd + this.opts.minSyncPeriodMs - Date.now());
    const run = () => {
      this.timer = undefined;
      this.running = this.runPending().then((retry) => {
        this.running = undefined;
        // A change that arrived while the sync ran found `running` set and only marked pending.
        if (retry || (this.pending && this.opts.source.isSynced())) this.schedule(false);
      });
    };
    // Nothing to wait for: right after the current I/O, not a timer's 1 ms minimum later.
    if (wait === 0) {
      const handle = setImmediate(run);
      this.timer = { cancel: () => clearImmediate(handle) };
    } else {
      const handle = setTimeout(run, wait);
      this.timer = { cancel: () => clearTimeout(handle) };
    }
  }

  /** Runs a sync now (tests, admin). Resolves when it finished. */
  async syncNow(full = false): Promise<SyncReport | undefined> {
    await this.running;
    this.pending = true;
    this.pendingFull ||= full;
    const again = await this.runPending();
    // Changes that arrived while it ran found it syncing and only marked pending.
    if (again || (this.pending && this.opts.source.isSynced())) this.schedule(false);
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
    this.syncing = true;
    try {
      return await this.sync();
    } finally {
      this.syncing = false;
    }
  }

  /** One sync of what is pending (runPending checked that it may run). */
  private async sync(): Promise<boolean> {
    this.opts.onSyncStart?.();
    const full = this.pendingFull;
    this.pending = false;
    this.pendingFull = false;
    const startedAt = new Date();
    const t0 = performance.now();
    let report: SyncReport;
    let incremental = false;
    try {
      if (full) await this.opts.sink.resync?.();
      const { result, hint } = await this.computeState(full);
      incremental = hint !== undefined;
      this.totals.update(result.state, hint?.changed);
      this.logNewModelErrors(result.errors);
      const outcome = await this.applyState(result.state, hint);
      for (const e of outcome.errors) this.opts.logger.error({ service: e.key }, `apply failed: ${e.message}`);
      const { frontends, backends } = this.totals;
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
        incremental,
      };
      if (outcome.errors.length > 0) {
        // Ports that failed are planned again by the next sync (with whatever else changed);
        // an error naming no port re-diffs everything.
        if (outcome.errors.every((e) => typeof e.key === 'string' && e.key !== '')) for (const e of outcome.errors) this.retryKeys.add(e.key as string);
        else this.needFull = true;
        // A full map whose entries this sync deleted (Services removed, blocks replaced): the
        // writer adds before it removes, so the room is there for the next sync. It runs after
        // the first backoff step, not after the long wait a full map that stayed full built up.
        if ((outcome.ops?.deletes ?? 0) > 0 && outcome.errors.some((e) => e.capacity !== undefined)) this.failures = 0;
        this.retryLater();
      } else {
        this.failures = 0;
        clearTimeout(this.retryTimer);
      }
    } catch (err) {
      // Never let one bad sync kill the loop: report it and retry, diffing everything.
      this.opts.logger.error({ err }, 'sync failed');
      report = { startedAt, durationMs: performance.now() - t0, services: 0, frontends: 0, backends: 0, modelErrors: [], applyErrors: [{ message: (err as Error).message }], full, incremental };
      this.needFull = true;
      this.retryLater();
    }
    this.lastSyncEnd = Date.now();
    if (report.applyErrors.length === 0) this.syncCount++;
    this.lastReport = report;
    this.opts.logger.debug({ durationMs: report.durationMs.toFixed(2), services: report.services, full }, 'synced');
    this.opts.onSync?.(report);
    return this.pending;
  }

  /**
   * Schedules the retry of a failed sync with exponential backoff: a lasting failure (a full map,
   * a port the writer refuses) costs a sync per backoff step, not one per min-sync period. New
   * changes are not held back: they sync at the min-sync period and carry the retry with them.
   */
  private retryLater(): void {
    this.failures++;
    const base = Math.max(10, this.opts.minSyncPeriodMs);
    const delay = Math.min(RETRY_MAX_MS, base * 2 ** Math.min(this.failures - 1, 20));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.schedule(false), delay);
    this.retryTimer.unref();
  }

  /** Runs `steps` yielding (yieldEveryMs), or whole when the reconciler does not yield. */
  private finish<T>(steps: Steps<T>): Promise<T> | T {
    const every = this.opts.yieldEveryMs;
    return every === undefined ? runSteps(steps) : runStepsYielding(steps, every, this.opts.turn);
  }

  private applyState(state: DesiredState, hint: { changed: ReadonlySet<string> } | undefined): Promise<ApplyOutcome> | ApplyOutcome {
    const { sink } = this.opts;
    // An incremental apply is small: whole. A full one pauses when the sink can.
    if (sink.applySteps && this.opts.yieldEveryMs !== undefined && !hint) return this.finish(sink.applySteps(state, hint));
    return sink.apply(state, hint);
  }

  /** The desired state, and the sink's hint when only some service ports can have changed. */
  private async computeState(resync: boolean): Promise<{ result: ModelResult; hint?: { changed: ReadonlySet<string> } }> {
    const { model, source } = this.opts;
    const dirty = this.dirty;
    this.dirty = { services: new Set(), endpointSlices: new Set() };
    const get = source.get?.bind(source);
    if (model && model.ready && get && !resync && !this.needFull) {
      const result = model.update({
        services: dirty.services,
        endpointSlices: dirty.endpointSlices,
        service: (key) => get('Service', key),
        endpointSlice: (key) => get('EndpointSlice', key),
      });
      if (this.retryKeys.size === 0) return { result, hint: { changed: result.changed } };
      const changed = new Set([...result.changed, ...this.retryKeys]);
      this.retryKeys.clear();
      return { result, hint: { changed } };
    }
    this.needFull = false;
    this.retryKeys.clear();
    const input = { ...source.snapshot(), nodeName: this.opts.nodeName, config: this.opts.modelConfig };
    // The input is read now: objects that change while the model pauses are the next sync's.
    if (model) return { result: model.fullSteps ? await this.finish(model.fullSteps(input)) : model.full(input) };
    if (!this.opts.compute) throw new Error('Reconciler: neither model nor compute given');
    return { result: this.opts.compute(input) };
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
