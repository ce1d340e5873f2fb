// Liveness and readiness, as kubelet probes see them.
//  - Liveness (/healthz): the agent's event loop keeps beating, and the programs, once attached,
//    are still attached. During start-up (before the first attach) a grace period applies, so
//    a slow first load is not killed. Failing liveness restarts the agent, which re-attaches.
//  - Readiness (/readyz): programs loaded and attached and a first complete sync done. Until
//    then the node's service table may be partial.

export interface HealthCheck {
  ok: boolean;
  detail: string;
}

export interface HealthReport {
  ok: boolean;
  checks: Record<string, HealthCheck>;
  /** The details of the failing checks, for a quick read. */
  reasons: string[];
}

export interface HealthSource {
  liveness(): HealthReport;
  readiness(): HealthReport;
}

export interface AgentHealthOptions {
  /** Liveness fails when the last heartbeat is older than this (default 30 s). */
  heartbeatTimeoutMs?: number;
  /** Liveness tolerates "not attached yet" this long after start (default 120 s). */
  startupGraceMs?: number;
  /** Liveness fails when one sync has been running longer than this (default 120 s): an apply that never returns. */
  syncStallMs?: number;
  /** Wall clock in ms (tests inject). */
  now?: () => number;
}

function report(checks: Record<string, HealthCheck>): HealthReport {
  const reasons = Object.values(checks).filter((c) => !c.ok).map((c) => c.detail);
  return { ok: reasons.length === 0, checks, reasons };
}

export class AgentHealth implements HealthSource {
  private readonly now: () => number;
  private readonly heartbeatTimeoutMs: number;
  private readonly startupGraceMs: number;
  private readonly startedAt: number;
  private lastBeat: number;
  private programsLoaded = false;
  private attached: boolean | undefined;
  private attachDetail = '';
  private syncedAt: number | undefined;
  private syncStartedAt: number | undefined;
  private readonly syncStallMs: number;

  constructor(opts: AgentHealthOptions = {}) {
    this.syncStallMs = opts.syncStallMs ?? 120_000;
    this.now = opts.now ?? Date.now;
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? 30_000;
    this.startupGraceMs = opts.startupGraceMs ?? 120_000;
    this.startedAt = this.now();
    this.lastBeat = this.startedAt;
  }

  /** Call from the agent's event loop (startHeartbeat does it on a timer). */
  heartbeat(): void {
    this.lastBeat = this.now();
  }

  /** Beats every intervalMs on an unref'd timer; returns a stop function. */
  startHeartbeat(intervalMs = 1000): () => void {
    this.heartbeat();
    const timer = setInterval(() => this.heartbeat(), intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  setProgramsLoaded(loaded: boolean): void {
    this.programsLoaded = loaded;
  }

  /** `detail` says where or what is missing, e.g. "tc on veth3 detached". */
  setProgramsAttached(attached: boolean, detail = ''): void {
    this.attached = attached;
    this.attachDetail = detail;
  }

  /** A sync began (the reconciler's loop is in it until syncEnded). */
  syncStarted(): void {
    this.syncStartedAt = this.now();
  }

  syncEnded(): void {
    this.syncStartedAt = undefined;
  }

  /** A complete sync has been programmed. */
  markSynced(): void {
    this.syncedAt ??= this.now();
  }

  liveness(): HealthReport {
    const age = this.now() - this.lastBeat;
    const inGrace = this.now() - this.startedAt < this.startupGraceMs;
    let programs: HealthCheck;
    if (this.attached === true) programs = { ok: true, detail: 'programs attached' };
    else if (this.attached === undefined && inGrace) programs = { ok: true, detail: 'starting: programs not attached yet' };
    else {
      programs = {
        ok: false,
        detail: `programs not attached${this.attachDetail ? `: ${this.attachDetail}` : this.attached === undefined ? ` ${Math.round(this.startupGraceMs / 1000)} s after start` : ''}`,
      };
    }
    return report({
      eventLoop: age <= this.heartbeatTimeoutMs
        ? { ok: true, detail: `last heartbeat ${age} ms ago` }
        : { ok: false, detail: `event loop stalled: last heartbeat ${age} ms ago (limit ${this.heartbeatTimeoutMs} ms)` },
      programs,
      syncLoop: this.syncLoopCheck(),
    });
  }

  private syncLoopCheck(): HealthCheck {
    if (this.syncStartedAt === undefined) return { ok: true, detail: 'no sync in progress' };
    const running = this.now() - this.syncStartedAt;
    return running <= this.syncStallMs
      ? { ok: true, detail: `a sync running for ${running} ms` }
      : { ok: false, detail: `sync loop stuck: one sync has been running for ${running} ms (limit ${this.syncStallMs} ms)` };
  }

  readiness(): HealthReport {
    return report({
      programsLoaded: this.programsLoaded ? { ok: true, detail: 'programs loaded' } : { ok: false, detail: 'programs not loaded yet' },
      programsAttached: this.attached
        ? { ok: true, detail: 'programs attached' }
        : { ok: false, detail: `programs not attached${this.attachDetail ? `: ${this.attachDetail}` : ''}` },
      synced: this.syncedAt !== undefined
        ? { ok: true, detail: `first sync at ${new Date(this.syncedAt).toISOString()}` }
        : { ok: false, detail: 'waiting for the first complete sync' },
    });
  }
}
