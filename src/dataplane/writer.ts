// The service-table writer: the only code that writes the service maps. Each apply diffs the
// desired state against a mirror of the maps and writes in three phases so a BPF program never
// sees a half-written service:
//   1. prepare — names (sl_svc_meta) and complete fresh backend blocks, nothing points at them yet;
//   2. commit  — frontend values (one atomic update each) switch services to their new blocks,
//                removed frontends go; a service that fails here is rolled back to its old values;
//   3. cleanup — blocks no frontend points at, names of removed services, and the flows (UDP
//                conntrack, socket rev-NAT) and affinity entries of backends that left.
// See docs/dataplane.md.
import type { Logger } from 'pino';
import { MultiIndex } from '../model/one-or-many.js';
import type { BackendKey, BackendValue4, SvcMeta } from '../bpf/sluice-structs.js';
import type { FlatText } from '../model/flat-text.js';
import type { DesiredState, FrontendKind } from '../model/types.js';
import type { ChangeAction, RemovedEndpoint, ServiceChange } from './apply-plan.js';
import { frontendAddrKey, frontendKinds, kindAt, kindEntries, planApplySteps, VIP_VALUE } from './apply-plan.js';
import { runSteps, type Steps } from '../model/steps.js';
import type { FrontendKinds, Plan } from './apply-plan.js';
import { cleanUpFlows, flushServiceConntrack } from './flow-cleanup.js';
import { IdAllocator } from './id-allocator.js';
import { Mirror } from './mirror.js';
import type { TargetOptions } from './service-target.js';
import { frontendId } from './service-target.js';
import type { BatchOutcome, ServiceTables } from './tables.js';
import { errorCode } from './tables.js';
import { mapSizeFlagOf } from './map-sizes.js';

export interface ApplyError {
  /** The service-port key, when the error belongs to one. */
  key?: string;
  /** The map whose operation failed. */
  map?: string;
  /** errno name of the map error. */
  code?: string;
  /**
   * Set when the map was full (E2BIG/ENOSPC from a hash map, or no free svc_id): its capacity.
   * The service port keeps what it had; the reconciler retries it (sluice_map_full_errors_total).
   */
  capacity?: number;
  message: string;
}

/** The errno names a full map answers an insert with (the kernel's hash maps: E2BIG). */
const FULL_MAP_CODES = new Set(['E2BIG', 'ENOSPC']);

export interface ApplyResult {
  services: { added: number; updated: number; removed: number; unchanged: number; failed: number; unsupportedFamily: number };
  /** Map elements written and deleted, and the calls that carried them (a batch counts once). */
  ops: { writes: number; deletes: number; calls: number };
  flows: { ctDeleted: number; sockRevnatDeleted: number; affinityDeleted: number };
  durationMs: number;
  errors: ApplyError[];
  /** Not errors: e.g. skipped IPv6 service ports, frontends claimed twice. */
  notes: string[];
}

export interface WriterOptions extends TargetOptions {
  tables: ServiceTables;
  /**
   * The IPv6 twins of `tables` (tablesFromObject(..., 'IPv6')). Given, IPv6 service ports are
   * programmed there by a writer of their own, independently of IPv4: a failure in one family's
   * maps never blocks the other (docs/ipv6.md). Without them IPv6 ports are skipped and counted
   * as unsupportedFamily.
   */
  tables6?: ServiceTables;
  logger?: Logger;
  /** Closes connected UDP sockets balanced to removed backends (run before their rev-NAT entries go). */
  udpSocketSweep?: () => void;
}

type FailFn = (c: ServiceChange, map: string, err: Error, stage: string) => void;

/** Backend block ids are u32; 0 means "no block" (a service without backends). */
const MAX_BACKEND_ID = 0xffffffff;

type Family = 'IPv4' | 'IPv6';

/** What an IPv4 writer tells the IPv6 writer it made (internal: see ServiceTableWriter's constructor). */
interface FamilyLink {
  family: 'IPv6';
  /** The IPv4 writer, whose svc_ids (one space for both families, sl_svc_meta) this one must not reuse. */
  sibling: ServiceTableWriter;
}

export class ServiceTableWriter {
  private readonly tables: ServiceTables;
  private mirror: Mirror | undefined;
  private readonly svcIds: IdAllocator;
  private readonly backendIds: IdAllocator;
  /** Flow cleanups that failed; retried by the next apply. */
  private pendingFlows: { endpoints: RemovedEndpoint[]; affinitySvcIds: Set<number> } = { endpoints: [], affinitySvcIds: new Set() };
  /** Service-port key → `${ip}|${port}` → frontend kind, as last planned. */
  private kinds = new Map<string, FrontendKinds>();
  /** ClusterIP → the service-port keys that have it (from `kinds`): an address is listed while any does. */
  private vipUsers = new MultiIndex<string, string>();
  /** Which family's maps this writer holds. */
  private readonly family: Family;
  /** The IPv6 writer, when this (IPv4) writer was given tables6. */
  private readonly v6: ServiceTableWriter | undefined;
  /** svc_ids held by the other family's writer: the two hand out svc_ids from one space. */
  private readonly otherIds: (id: number) => boolean;
  /** Desired ports neither planned nor in this family's plan, counted unchanged by both writers (merge). */
  private lastUnplanned = 0;

  /** `link` is internal: an IPv4 writer given tables6 makes its IPv6 writer with it. */
  constructor(
    private readonly opts: WriterOptions,
    link?: FamilyLink,
  ) {
    this.tables = opts.tables;
    this.family = link?.family ?? 'IPv4';
    const ids = Math.min(opts.tables.svcMeta.maxEntries, opts.tables.counters.maxEntries);
    this.otherIds = link ? (id) => link.sibling.svcIds.has(id) : (id) => this.v6?.svcIds.has(id) ?? false;
    this.svcIds = new IdAllocator(1, ids - 1, this.otherIds);
    // Backend block ids are one space too (each family's blocks are in its own map): a dump can
    // then join both families' frontends and blocks by backend_id.
    const otherBlocks = link ? (id: number) => link.sibling.backendIds.has(id) : (id: number) => this.v6?.backendIds.has(id) ?? false;
    this.backendIds = new IdAllocator(1, MAX_BACKEND_ID, otherBlocks);
    this.v6 = !link && opts.tables6 ? new ServiceTableWriter({ ...opts, tables: opts.tables6, tables6: undefined }, { family: 'IPv6', sibling: this }) : undefined;
  }

  /** Re-reads the maps: the next apply repairs whatever differs from the desired state. */
  resync(): void {
    // sl_svc_meta is one map for both families (65,536 slots of 192 bytes by default): read once,
    // each family's mirror takes its own names from it.
    const names = this.tables.svcMeta.entries();
    this.resyncFamily(names);
    // The IPv6 writer reads too, so that neither hands out an id the other holds. Its failure
    // does not stop IPv4: its own apply reads again and reports it.
    try {
      this.v6?.resyncFamily(names);
    } catch {
      // reported by the IPv6 writer's apply
    }
  }

  private resyncFamily(names: ReadonlyArray<readonly [number, SvcMeta]>): void {
    this.mirror = Mirror.read(this.tables, this.family, names);
    this.kinds = new Map();
    this.vipUsers = new MultiIndex();
    this.svcIds.reset(this.mirror.serviceIds());
    this.backendIds.reset(this.mirror.backendIds());
  }

  /**
   * Reads the maps now unless already read, so that the first apply need not. The agent calls it
   * before its sources have synced: the read (at 10,000 Services ~35 ms with empty maps, more
   * with full ones after a restart) then overlaps the lists instead of delaying the first sync.
   * Nothing else writes the maps in between: this writer is their only writer.
   */
  preload(): void {
    this.loaded();
  }

  /** Whether the maps of both families hold no service (a first install, or after `sluice-agent cleanup`). */
  programsNothing(): boolean {
    if (this.loaded().serviceIds().size > 0) return false;
    return this.v6 ? this.v6.mirror === undefined || this.v6.mirror.serviceIds().size === 0 : true;
  }

  private loaded(): Mirror {
    if (!this.mirror) this.resync();
    return this.mirror as Mirror;
  }

  /**
   * Makes the maps hold `desired`. `hint.changed`: only these service-port keys differ from the
   * last successful apply (the incremental model says so); the others are left alone, so the
   * cost follows the change, not the cluster. Without it, everything is diffed.
   */
  apply(desired: DesiredState, hint?: { changed: ReadonlySet<string> }): ApplyResult {
    return runSteps(this.applySteps(desired, hint));
  }

  /**
   * apply(), pausing between its phases and every ITEMS_PER_STEP planned ports (src/model/steps.ts),
   * never inside a phase's map writes. Nothing else may apply through this writer until it returns.
   */
  *applySteps(desired: DesiredState, hint?: { changed: ReadonlySet<string> }): Steps<ApplyResult> {
    const res = yield* this.applyFamily(desired, hint);
    if (!this.v6) return res;
    yield;
    const res6 = yield* this.v6.applyFamily(desired, hint);
    return mergeResults(res, res6, this.lastUnplanned);
  }

  private *applyFamily(desired: DesiredState, hint?: { changed: ReadonlySet<string> }): Steps<ApplyResult> {
    const t0 = performance.now();
    this.lastUnplanned = 0;
    const res: ApplyResult = {
      services: { added: 0, updated: 0, removed: 0, unchanged: 0, failed: 0, unsupportedFamily: 0 },
      ops: { writes: 0, deletes: 0, calls: 0 },
      flows: { ctDeleted: 0, sockRevnatDeleted: 0, affinityDeleted: 0 },
      durationMs: 0,
      errors: [],
      notes: [],
    };
    let mirror: Mirror;
    try {
      mirror = this.loaded();
    } catch (err) {
      res.errors.push({ code: errorCode(err), message: `reading the ${this.family === 'IPv6' ? 'IPv6 ' : ''}service maps failed, nothing written: ${(err as Error).message}` });
      return this.finish(res, t0);
    }
    const only = hint && this.kinds.size > 0 ? hint.changed : undefined;
    const plan = yield* planApplySteps(desired, {
      mirror, svcIds: this.svcIds, backendIds: this.backendIds, target: this.opts, family: this.family,
      otherFamilyProgrammed: this.family === 'IPv6' || this.v6 !== undefined,
    }, only);
    yield;
    const vips = this.updateKinds(mirror, plan, only !== undefined);
    res.errors.push(...plan.errors);
    res.services.failed += plan.errors.length;
    res.services.unsupportedFamily = plan.unsupported;
    if (plan.unsupported > 0) res.notes.push(`${plan.unsupported} IPv6 service port(s) skipped: unsupported family (IPv4 only for now)`);

    const failed = new Map<ServiceChange, ApplyError>();
    const fail = (c: ServiceChange, map: string, err: Error, stage: string): void => {
      if (failed.has(c)) return;
      const code = errorCode(err);
      const capacity = code && FULL_MAP_CODES.has(code) ? this.capacityOf(map) : undefined;
      if (capacity === undefined) {
        failed.set(c, { key: c.key, map, code, message: `service port ${c.key}: ${stage} in ${map} failed: ${err.message}` });
        return;
      }
      // Named for what the operator can do: which map, how big it is, which flag sizes it.
      failed.set(c, {
        key: c.key, map, code, capacity,
        message: `service port ${c.key}: ${map} is full (capacity ${capacity}; ${mapSizeFlagOf(map) ?? 'not sizable'}): ${stage} failed (${err.message}); retried by the next sync`,
      });
    };
    const live = (c: ServiceChange): boolean => !failed.has(c);

    this.prepare(mirror, plan.changes, res, fail, live);
    yield;
    const applied = this.commit(mirror, plan.changes, res, fail, live);
    this.writeVips(mirror, vips.sets, res);
    for (const [c, err] of failed) {
      const undo = this.rollback(mirror, c, applied.get(c) ?? []);
      err.message += undo ? `; ${undo}` : '; the service keeps its previous state';
    }
    yield;
    this.cleanup(mirror, plan.changes.filter(live), res, only !== undefined ? touchedBlocks(plan.changes) : undefined);
    this.deleteVips(mirror, vips.deletes, res);
    mirror.trimBlocks();

    for (const c of plan.changes) {
      if (failed.has(c)) continue;
      const counters: Record<ChangeAction, keyof ApplyResult['services']> = { add: 'added', update: 'updated', remove: 'removed', unchanged: 'unchanged' };
      res.services[counters[c.action]]++;
    }
    res.services.failed += failed.size;
    res.errors.push(...failed.values());
    if (only) {
      // Ids of what this apply removed go back to the pools; a failed port is planned again next time.
      this.lastUnplanned = desired.services.size - [...plan.planned].filter((k) => desired.services.has(k)).length;
      res.services.unchanged += this.lastUnplanned;
      for (const c of plan.changes) if (!mirror.names.has(c.svcId) && !mirror.svcIdInUse(c.svcId)) this.svcIds.free(c.svcId);
      for (const id of touchedBlocks(plan.changes)) if (!mirror.blocks.has(id) && mirror.blockUse(id) === 0) this.backendIds.free(id);
    } else {
      this.svcIds.sync(mirror.serviceIds());
      this.backendIds.sync(mirror.backendIds());
    }
    return this.finish(res, t0);
  }

  /** The capacity of one of this writer's hash maps by name (undefined for arrays: their errors are not "full"). */
  private capacityOf(map: string): number | undefined {
    const t = this.tables;
    for (const table of [t.frontends, t.backends, t.vips]) if (table.name === map) return table.maxEntries;
    return undefined;
  }

  private finish(res: ApplyResult, t0: number): ApplyResult {
    res.durationMs = performance.now() - t0;
    this.opts.logger?.debug({ services: res.services, ops: res.ops, durationMs: res.durationMs.toFixed(2) }, 'service tables applied');
    return res;
  }

  private count(res: ApplyResult, kind: 'writes' | 'deletes', n: number, out: BatchOutcome): BatchOutcome {
    if (n > 0) {
      res.ops.calls++;
      res.ops[kind] += n;
    }
    return out;
  }

  /** Phase 1: names and fresh blocks. Nothing references them yet, so any order is safe. */
  private prepare(mirror: Mirror, changes: ServiceChange[], res: ApplyResult, fail: FailFn, live: (c: ServiceChange) => boolean): void {
    const t = this.tables;
    const named = changes.filter((c) => c.writeName);
    if (named.length > 0) {
      const out = this.count(res, 'writes', named.length, t.svcMeta.setMany(named.map((c) => [c.svcId, { name: c.key }] as const)));
      const bad = new Set(out.failures.map((f) => f.index));
      out.failures.forEach((f) => fail(named[f.index] as ServiceChange, t.svcMeta.name, f.error, 'naming its service id'));
      named.forEach((c, i) => !bad.has(i) && mirror.setName(c.svcId, c.key));
    }
    // A reused id must not show the counters of the service that had it before.
    const fresh = changes.filter((c) => c.newId && live(c)).map((c) => c.svcId);
    if (fresh.length > 0) {
      const out = this.count(res, 'deletes', fresh.length, t.counters.deleteMany(fresh));
      for (const f of out.failures) res.notes.push(`resetting the counters of service id ${fresh[f.index]} failed: ${f.error.message}`);
    }
    const owners: ServiceChange[] = [];
    const entries: Array<readonly [BackendKey, BackendValue4]> = [];
    for (const c of changes) {
      if (!c.block || !live(c)) continue;
      const { backendId, values } = c.block;
      values.forEach((v, ordinal) => {
        entries.push([{ backend_id: backendId, ordinal }, v]);
        owners.push(c);
      });
    }
    if (entries.length === 0) return;
    const out = this.count(res, 'writes', entries.length, t.backends.setMany(entries));
    const bad = new Set(out.failures.map((f) => f.index));
    out.failures.forEach((f) => fail(owners[f.index] as ServiceChange, t.backends.name, f.error, 'writing its new backend block'));
    // Written entries of a failed block stay in the mirror: unreferenced, cleanup deletes them.
    entries.forEach(([k, v], i) => !bad.has(i) && mirror.setBackend(k.backend_id, k.ordinal, v));
  }

  /** Phase 2: frontend values, one atomic update each; then removed frontends. */
  private commit(mirror: Mirror, changes: ServiceChange[], res: ApplyResult, fail: FailFn, live: (c: ServiceChange) => boolean): Map<ServiceChange, FlatText[]> {
    const t = this.tables.frontends;
    const applied = new Map<ServiceChange, FlatText[]>();
    const note = (c: ServiceChange, id: FlatText): void => {
      const list = applied.get(c);
      if (list) list.push(id);
      else applied.set(c, [id]);
    };
    const sets = changes.filter(live).flatMap((c) => c.frontendSets.map((e) => ({ c, key: e[0], value: e[1] })));
    if (sets.length > 0) {
      const out = this.count(res, 'writes', sets.length, t.setMany(sets.map((s) => [s.key, s.value] as const)));
      const bad = new Set(out.failures.map((f) => f.index));
      out.failures.forEach((f) => fail((sets[f.index] as (typeof sets)[number]).c, t.name, f.error, 'switching a frontend'));
      sets.forEach((s, i) => {
        if (bad.has(i)) return;
        mirror.setFrontend(s.key, s.value);
        note(s.c, frontendId(s.key));
      });
    }
    // A service whose switch failed keeps its other frontends: the rollback restores it whole.
    const dels = changes.filter(live).flatMap((c) => c.frontendDeletes.map((key) => ({ c, key })));
    if (dels.length > 0) {
      const out = this.count(res, 'deletes', dels.length, t.deleteMany(dels.map((d) => d.key)));
      const bad = new Set(out.failures.map((f) => f.index));
      out.failures.forEach((f) => fail((dels[f.index] as (typeof dels)[number]).c, t.name, f.error, 'deleting a frontend'));
      dels.forEach((d, i) => {
        if (bad.has(i)) return;
        mirror.deleteFrontend(d.key);
        note(d.c, frontendId(d.key));
      });
    }
    return applied;
  }

  /**
   * Records the frontend kinds of the planned keys (kept keys keep theirs) and returns the
   * ClusterIPs to list and unlist: of every address (full) or of those the planned keys had or
   * have (partial).
   */
  private updateKinds(mirror: Mirror, plan: Plan, partial: boolean): { sets: string[]; deletes: string[] } {
    const clusterIps = (kinds: FrontendKinds | undefined): string[] => {
      const out: string[] = [];
      for (const [ipPort, kind] of kindEntries(kinds)) if (kind === 'ClusterIP') out.push(ipPort.slice(0, ipPort.lastIndexOf('|')));
      return out;
    };
    const affected = new Set<string>();
    const next = partial ? this.kinds : new Map<string, FrontendKinds>();
    if (!partial) this.vipUsers = new MultiIndex();
    for (const key of plan.planned) {
      const old = this.kinds.get(key);
      for (const ip of clusterIps(old)) {
        affected.add(ip);
        this.vipUsers.delete(ip, key);
      }
      let now = plan.kinds.get(key);
      if (!now && plan.keep.has(key)) now = old ?? keptKinds(mirror, key);
      if (now) next.set(key, now);
      else next.delete(key);
      for (const ip of clusterIps(now)) {
        affected.add(ip);
        this.vipUsers.add(ip, key);
      }
    }
    this.kinds = next;
    if (!partial) for (const ip of mirror.vips.keys()) affected.add(ip);
    const listed = (ip: string) => this.vipUsers.has(ip);
    const sets = [...affected].filter((ip) => listed(ip) && mirror.vips.get(ip)?.flags !== VIP_VALUE.flags).sort();
    const deletes = [...affected].filter((ip) => !listed(ip) && mirror.vips.has(ip)).sort();
    return { sets, deletes };
  }

  /**
   * ClusterIPs whose unknown ports are refused, listed once their frontends are in place (a
   * ClusterIP listed before its frontends would refuse the new Service's own ports). Failures
   * leave the address to the next apply; the Service's own frontends are unaffected.
   */
  private writeVips(mirror: Mirror, addrs: readonly string[], res: ApplyResult): void {
    if (addrs.length === 0) return;
    const t = this.tables.vips;
    const out = this.count(res, 'writes', addrs.length, t.setMany(addrs.map((addr) => [{ addr }, VIP_VALUE] as const)));
    const bad = new Set(out.failures.map((f) => f.index));
    addrs.forEach((addr, i) => !bad.has(i) && mirror.vips.set(addr, VIP_VALUE));
    for (const f of out.failures) {
      const code = errorCode(f.error);
      const full = code !== undefined && FULL_MAP_CODES.has(code);
      const why = full ? `${t.name} is full (capacity ${t.maxEntries}; ${mapSizeFlagOf(t.name) ?? 'not sizable'}): ${f.error.message}` : f.error.message;
      res.errors.push({ map: t.name, code, ...(full ? { capacity: t.maxEntries } : {}), message: `listing ClusterIP ${addrs[f.index]} (unknown ports refused) failed: ${why}; retried next apply` });
    }
  }

  /** ClusterIPs no Service uses any more: their addresses are ordinary destinations again. */
  private deleteVips(mirror: Mirror, addrs: readonly string[], res: ApplyResult): void {
    if (addrs.length === 0) return;
    const t = this.tables.vips;
    const out = this.count(res, 'deletes', addrs.length, t.deleteMany(addrs.map((addr) => ({ addr }))));
    const bad = new Set(out.failures.map((f) => f.index));
    addrs.forEach((addr, i) => !bad.has(i) && mirror.vips.delete(addr));
    for (const f of out.failures) {
      res.errors.push({ map: t.name, code: errorCode(f.error), message: `unlisting ClusterIP ${addrs[f.index]} failed: ${f.error.message}; retried next apply` });
    }
  }

  /** Puts back what a failed service's commit changed. Returns a note when it could not. */
  private rollback(mirror: Mirror, c: ServiceChange, touched: FlatText[]): string | undefined {
    const t = this.tables.frontends;
    const problems: string[] = [];
    for (const id of touched) {
      const prev = c.previous.get(id);
      const now = mirror.frontends.get(id);
      try {
        if (prev) {
          t.set(prev.key, prev.value);
          mirror.setFrontend(prev.key, prev.value);
        } else if (now) {
          t.delete(now.key);
          mirror.deleteFrontend(now.key);
        }
      } catch (err) {
        problems.push(`${id}: ${(err as Error).message}`);
      }
    }
    if (problems.length === 0) return touched.length > 0 ? 'rolled back to its previous state' : undefined;
    return `rollback failed for frontend(s) ${problems.join(', ')}; the next apply retries`;
  }

  /**
   * Phase 3: unreferenced blocks (of `blocks` only, when given: the ones this apply touched),
   * names of removed services, stale flows and affinity.
   */
  private cleanup(mirror: Mirror, changes: ServiceChange[], res: ApplyResult, blocks?: ReadonlySet<number>): void {
    const t = this.tables;
    const doomed: Array<{ backend_id: number; ordinal: number }> = [];
    for (const backendId of blocks ?? mirror.blocks.keys()) {
      const block = mirror.blocks.get(backendId);
      if (!block) continue;
      const used = mirror.blockUse(backendId);
      for (const ordinal of block.ordinalsFrom(used)) doomed.push({ backend_id: backendId, ordinal });
    }
    if (doomed.length > 0) {
      const out = this.count(res, 'deletes', doomed.length, t.backends.deleteMany(doomed));
      const bad = new Set(out.failures.map((f) => f.index));
      doomed.forEach((k, i) => !bad.has(i) && mirror.deleteBackend(k.backend_id, k.ordinal));
      if (out.failures.length > 0) {
        const f = out.failures[0] as (typeof out.failures)[number];
        res.errors.push({ map: t.backends.name, code: errorCode(f.error), message: `deleting ${out.failures.length} unused backend entries failed (first: ${f.error.message}); retried next apply` });
      }
    }

    const unnamed = changes.filter((c) => c.deleteName && !mirror.svcIdInUse(c.svcId));
    if (unnamed.length > 0) {
      const out = this.count(res, 'deletes', unnamed.length, t.svcMeta.deleteMany(unnamed.map((c) => c.svcId)));
      const bad = new Set(out.failures.map((f) => f.index));
      unnamed.forEach((c, i) => !bad.has(i) && mirror.deleteName(c.svcId));
      for (const f of out.failures) {
        const c = unnamed[f.index] as ServiceChange;
        res.errors.push({ key: c.key, map: t.svcMeta.name, code: errorCode(f.error), message: `service port ${c.key}: clearing its name failed: ${f.error.message}` });
      }
    }

    const req = this.pendingFlows;
    for (const c of changes) {
      req.endpoints.push(...c.removedEndpoints);
      if (c.flushAffinity) req.affinitySvcIds.add(c.svcId);
    }
    if (req.endpoints.length === 0 && req.affinitySvcIds.size === 0) return;
    const flows = cleanUpFlows(t, req, { beforeSockRevnatDelete: this.opts.udpSocketSweep }, this.family);
    res.flows.ctDeleted += flows.ctDeleted;
    res.flows.sockRevnatDeleted += flows.sockRevnatDeleted;
    res.flows.affinityDeleted += flows.affinityDeleted;
    res.ops.deletes += flows.deletes;
    res.ops.calls += flows.batchCalls;
    if (flows.errors.length > 0) {
      res.errors.push({ message: `cleaning flows of removed backends: ${flows.errors.join('; ')}; retried next apply` });
    } else {
      this.pendingFlows = { endpoints: [], affinitySvcIds: new Set() };
    }
  }

  /** Deletes the conntrack entries of a service port (admin). Returns how many went. */
  flushConntrack(svcKey: string): number {
    const own = this.ownId(svcKey);
    if (own !== undefined) return flushServiceConntrack(this.tables, new Set([own]));
    const id6 = this.v6?.ownId(svcKey);
    if (id6 !== undefined && this.v6) return this.v6.flushConntrack(svcKey);
    throw new Error(`flush conntrack: no programmed service port "${svcKey}"`);
  }

  flushConntrackIds(svcIds: readonly number[]): number {
    return flushServiceConntrack(this.tables, new Set(svcIds)) + (this.v6?.flushConntrackIds(svcIds) ?? 0);
  }

  /** The svc_id of a programmed service port (of either family). */
  serviceId(svcKey: string): number | undefined {
    return this.ownId(svcKey) ?? this.v6?.ownId(svcKey);
  }

  private ownId(svcKey: string): number | undefined {
    for (const [id, key] of this.loaded().names) if (key === svcKey) return id;
    return undefined;
  }

  /** svc_id → service-port key, as programmed (both families). */
  serviceNames(): ReadonlyMap<number, string> {
    const names = new Map(this.loaded().names);
    if (this.v6) for (const [id, key] of this.v6.serviceNames()) names.set(id, key);
    return names;
  }

  /** The kind of a frontend of the last apply (the maps do not record it). */
  frontendKind(svcKey: string, ip: string, port: number): FrontendKind | undefined {
    return kindAt(this.kinds.get(svcKey), `${ip}|${port}`) ?? this.v6?.frontendKind(svcKey, ip, port);
  }
}

/**
 * One result of the two families' applies. Each writer counted the desired ports no plan covered
 * (an incremental apply) as unchanged: that number is counted once.
 */
function mergeResults(a: ApplyResult, b: ApplyResult, unplanned: number): ApplyResult {
  return {
    services: {
      added: a.services.added + b.services.added,
      updated: a.services.updated + b.services.updated,
      removed: a.services.removed + b.services.removed,
      unchanged: a.services.unchanged + b.services.unchanged - unplanned,
      failed: a.services.failed + b.services.failed,
      unsupportedFamily: a.services.unsupportedFamily + b.services.unsupportedFamily,
    },
    ops: { writes: a.ops.writes + b.ops.writes, deletes: a.ops.deletes + b.ops.deletes, calls: a.ops.calls + b.ops.calls },
    flows: {
      ctDeleted: a.flows.ctDeleted + b.flows.ctDeleted,
      sockRevnatDeleted: a.flows.sockRevnatDeleted + b.flows.sockRevnatDeleted,
      affinityDeleted: a.flows.affinityDeleted + b.flows.affinityDeleted,
    },
    durationMs: a.durationMs + b.durationMs,
    errors: [...a.errors, ...b.errors],
    notes: [...a.notes, ...b.notes],
  };
}

/** Backend blocks a plan's changes wrote or left: the ones cleanup must look at. */
function touchedBlocks(changes: readonly ServiceChange[]): Set<number> {
  const ids = new Set<number>();
  for (const c of changes) {
    if (c.block) ids.add(c.block.backendId);
    for (const prev of c.previous.values()) if (prev) ids.add(prev.value.backend_id);
  }
  return ids;
}

/** After a restart the kinds of a kept (invalid) port are unknown: its listed addresses were ClusterIPs. */
function keptKinds(mirror: Mirror, key: string): FrontendKinds | undefined {
  const svc = mirror.service(key);
  if (!svc) return undefined;
  const kinds: Array<[FlatText, FrontendKind]> = [];
  for (const fe of svc.frontends.values()) if (mirror.vips.has(fe.key.addr)) kinds.push([frontendAddrKey(fe.key.addr, fe.key.port), 'ClusterIP']);
  return frontendKinds(kinds);
}
