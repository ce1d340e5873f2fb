// The diff of one apply: for every service port, what must be written where, computed against the
// mirror of the maps before anything is written. Pure apart from handing out ids.
import type { BackendValue4, FrontendKey4, ServiceValue } from '../bpf/sluice-structs.js';
import { IPPROTO, VIP_F } from '../bpf/sluice-structs.js';
import { flatText, type FlatText } from '../model/flat-text.js';
import { ITEMS_PER_STEP, runSteps, type Steps } from '../model/steps.js';
import type { DesiredServicePort, DesiredState, FrontendKind } from '../model/types.js';
import type { IdAllocator } from './id-allocator.js';
import { mapSizeFlagOf } from './map-sizes.js';
import { MAP_NAMES } from './tables.js';
import type { Mirror, MirrorFrontend, ProgrammedService } from './mirror.js';
import type { ServiceTarget, TargetOptions } from './service-target.js';
import { DesiredPortError, endpointId, serviceTarget } from './service-target.js';

/** A backend leaving a service: its affinity entries go, and for UDP its flows too. */
export interface RemovedEndpoint {
  svcId: number;
  proto: number;
  addr: string;
  port: number;
}

export type ChangeAction = 'add' | 'update' | 'remove' | 'unchanged';

export interface ServiceChange {
  key: string;
  svcId: number;
  action: ChangeAction;
  /** The svc_id was handed out by this apply. */
  newId: boolean;
  /** Write sl_svc_meta[svcId] = key (before any frontend names the id). */
  writeName: boolean;
  /** Clear sl_svc_meta[svcId] once the service's frontends are gone. */
  deleteName: boolean;
  /** A fresh backend block, written complete before any frontend points at it. */
  block: { backendId: number; values: BackendValue4[] } | null;
  frontendSets: Array<[FrontendKey4, ServiceValue]>;
  frontendDeletes: FrontendKey4[];
  /** What each frontend this change touches held before (undefined: absent), for rollback. */
  previous: Map<FlatText, MirrorFrontend | undefined>;
  removedEndpoints: RemovedEndpoint[];
  /** Drop every affinity entry of the service (removed, or affinity switched off). */
  flushAffinity: boolean;
}

export interface PlanProblem {
  key?: string;
  /** Set when the problem is a full map (here: no free svc_id): the map and its capacity. */
  map?: string;
  capacity?: number;
  message: string;
}

export interface Plan {
  changes: ServiceChange[];
  errors: PlanProblem[];
  /** Service ports of a family no writer programs (IPv6 without the IPv6 maps). */
  unsupported: number;
  /** Per planned service-port key: `${ip}|${port}` → frontend kind (dumps, ClusterIP listing). */
  kinds: Map<string, FrontendKinds>;
  /** Planned keys whose ports are invalid: their programmed state is kept as it is. */
  keep: Set<string>;
  /** The keys this plan covered: every desired and programmed one, or just `only`. */
  planned: Set<string>;
}

/**
 * The kinds of a service port's frontends by `${ip}|${port}`. Nearly every port has one frontend,
 * a ClusterIP: that is stored as its bare `ip|port` string (a Map per port cost ~3 MB at 12,700
 * ports); anything else as a Map.
 */
export type FrontendKinds = FlatText | ReadonlyMap<string, FrontendKind>;

/** The `${ip}|${port}` a FrontendKinds is keyed by (kept: built flat). */
export function frontendAddrKey(addr: string, port: number): FlatText {
  return flatText(addr, '|', port);
}

export function frontendKinds(entries: ReadonlyArray<readonly [FlatText, FrontendKind]>): FrontendKinds {
  const only = entries.length === 1 ? entries[0] : undefined;
  return only && only[1] === 'ClusterIP' ? only[0] : new Map(entries);
}

export function kindEntries(kinds: FrontendKinds | undefined): Iterable<readonly [string, FrontendKind]> {
  if (kinds === undefined) return [];
  return typeof kinds === 'string' ? [[kinds, 'ClusterIP']] : kinds;
}

export function kindAt(kinds: FrontendKinds | undefined, ipPort: string): FrontendKind | undefined {
  return typeof kinds === 'string' ? (kinds === ipPort ? 'ClusterIP' : undefined) : kinds?.get(ipPort);
}

/** The sl_vips4 value of every ClusterIP: refuse the ports that are no frontend. */
export const VIP_VALUE = { flags: VIP_F.REJECT_UNKNOWN } as const;

export interface PlanContext {
  mirror: Mirror;
  svcIds: IdAllocator;
  backendIds: IdAllocator;
  target: TargetOptions;
  /** The family whose maps this plan writes (default IPv4); ports of the other family are skipped. */
  family?: 'IPv4' | 'IPv6';
  /** The other family is programmed by a writer of its own: its ports are not counted unsupported. */
  otherFamilyProgrammed?: boolean;
}

const PROTO_IN_KEY = /\/(TCP|UDP|SCTP)\/IPv[46]$/;

function protoOf(svc: ProgrammedService): number {
  const fe = svc.frontends.values().next().value;
  if (fe) return fe.key.proto;
  const m = PROTO_IN_KEY.exec(svc.key);
  return m ? IPPROTO[m[1] as 'TCP' | 'UDP' | 'SCTP'] : 0;
}

/** addr:port of every backend the service's frontends can currently select. */
function programmedEndpoints(mirror: Mirror, svc: ProgrammedService): Map<string, { addr: string; port: number }> {
  const out = new Map<string, { addr: string; port: number }>();
  const seen = new Set<number>();
  for (const { value } of svc.frontends.values()) {
    if (seen.has(value.backend_id)) continue;
    seen.add(value.backend_id);
    const block = mirror.blocks.get(value.backend_id);
    for (const [ordinal, be] of block?.entries() ?? []) {
      if (ordinal < value.count + value.local_count) out.set(endpointId(be.addr, be.port), { addr: be.addr, port: be.port });
    }
  }
  return out;
}

/** The backend_id the service can keep: all frontends share a complete block equal to the target. */
function reusableBlock(mirror: Mirror, current: ProgrammedService | undefined, t: ServiceTarget): number | undefined {
  if (!current || current.frontends.size === 0) return undefined;
  const first = current.frontends.values().next().value as MirrorFrontend;
  const id = first.value.backend_id;
  for (const { value } of current.frontends.values()) {
    if (value.backend_id !== id || value.count !== t.count || value.local_count !== t.localCount) return undefined;
  }
  if (t.block.length === 0) return id === 0 ? 0 : undefined;
  if (id === 0) return undefined;
  return mirror.blockStartsWith(id, t.block) ? id : undefined;
}

function sameValue(a: ServiceValue, b: ServiceValue): boolean {
  return (
    a.svc_id === b.svc_id && a.backend_id === b.backend_id && a.count === b.count && a.local_count === b.local_count &&
    a.flags === b.flags && a.affinity_timeout_s === b.affinity_timeout_s
  );
}

function emptyChange(key: string, svcId: number, action: ChangeAction): ServiceChange {
  return {
    key, svcId, action, newId: false, writeName: false, deleteName: false, block: null,
    frontendSets: [], frontendDeletes: [], previous: new Map(), removedEndpoints: [], flushAffinity: false,
  };
}

/** What one plan covers: the programmed services and the desired ports, both in key order. */
interface PlanScope {
  current: Map<string, ProgrammedService>;
  wanted: Array<[string, DesiredServicePort]>;
}

/** Frontends claimed in this apply: frontendId → the service key that owns it. */
type Claims = Map<FlatText, string>;

const byKey = (a: [string, unknown], b: [string, unknown]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** Phase 1: the keys to plan, each with what is programmed and what is desired. */
function planScope(desired: DesiredState, mirror: Mirror, only: ReadonlySet<string> | undefined): PlanScope {
  if (!only) {
    const wanted = [...desired.services];
    // The model hands over key order already; sort only when it did not.
    if (wanted.some((e, i) => i > 0 && byKey(wanted[i - 1] as [string, unknown], e) > 0)) wanted.sort(byKey);
    return { current: mirror.services(), wanted };
  }
  const current = new Map<string, ProgrammedService>();
  const wanted: Array<[string, DesiredServicePort]> = [];
  for (const key of only) {
    const cur = mirror.service(key);
    if (cur) current.set(key, cur);
    const port = desired.services.get(key);
    if (port) wanted.push([key, port]);
  }
  wanted.sort(byKey);
  return { current, wanted };
}

/**
 * Phase 2: the target of every desired port, and who claims which frontend. A port that cannot
 * be written (invalid, or repeating a frontend another port holds) is recorded as an error and
 * kept as it is programmed.
 */
function* resolveTargets(wanted: PlanScope['wanted'], ctx: PlanContext, only: ReadonlySet<string> | undefined, plan: Plan): Steps<{ targets: Map<string, ServiceTarget>; claims: Claims }> {
  const { mirror } = ctx;
  const targets = new Map<string, ServiceTarget>();
  const claims: Claims = new Map();
  /** Whether a frontend is held by a service this plan does not cover (which keeps it). */
  const heldElsewhere = (id: FlatText): string | undefined => {
    if (!only) return undefined;
    const fe = mirror.frontends.get(id);
    const owner = fe && mirror.names.get(fe.value.svc_id);
    return owner !== undefined && !only.has(owner) ? owner : undefined;
  };
  let n = 0;
  for (const [key, port] of wanted) {
    if (++n % ITEMS_PER_STEP === 0) yield;
    if (port.family !== (ctx.family ?? 'IPv4')) {
      if (!ctx.otherFamilyProgrammed) plan.unsupported++;
      continue;
    }
    let t: ServiceTarget;
    try {
      if (port.key !== key) throw new DesiredPortError(key, 'key', port.key, `differs from its map key "${key}"`);
      t = serviceTarget(port, ctx.target);
    } catch (err) {
      plan.errors.push({ key, message: (err as Error).message });
      plan.keep.add(key);
      continue;
    }
    // Which Service keeps a contested frontend is settled once, in the model
    // (src/model/conflicts.ts): a desired state that still holds a frontend twice is invalid
    // input here, and the port that repeats it is kept as it is programmed.
    let owner: string | undefined;
    const taken = [...t.frontends].find(([id]) => {
      owner = claims.get(id) ?? heldElsewhere(id);
      return owner !== undefined && owner !== key;
    });
    if (taken) {
      const fe = taken[1];
      plan.errors.push({
        key,
        message: `service port ${key}: frontend ${fe.key.addr}:${fe.key.port}/${port.protocol} is also a frontend of ${owner} ` +
          '(the desired state must hold each frontend once: the model settles conflicts); kept as programmed',
      });
      plan.keep.add(key);
      continue;
    }
    const kinds: Array<[FlatText, FrontendKind]> = [];
    for (const [id, fe] of t.frontends) {
      claims.set(id, key);
      kinds.push([frontendAddrKey(fe.key.addr, fe.key.port), fe.kind]);
    }
    plan.kinds.set(key, frontendKinds(kinds));
    targets.set(key, t);
  }
  return { targets, claims };
}

/**
 * Phase 3: the ids of an added or updated service port. Returns the backend_id its frontends
 * point at (0: no backends; the programmed one when the block is unchanged; else a fresh one,
 * whose block goes in `change.block`), or why there is none.
 */
function assignIds(key: string, t: ServiceTarget, cur: ProgrammedService | undefined, ctx: PlanContext, change: ServiceChange): number | PlanProblem {
  let svcId = cur?.svcId;
  if (svcId === undefined) {
    svcId = ctx.svcIds.allocate();
    if (svcId === undefined) {
      const capacity = ctx.svcIds.max + 1;
      const map = MAP_NAMES.svcMeta;
      return {
        key, map, capacity,
        message: `service port ${key}: no free service id: ${map} is full (capacity ${capacity}: ids 1-${ctx.svcIds.max}, shared by both IP families; ${mapSizeFlagOf(map) ?? 'its size'})`,
      };
    }
    change.newId = true;
  }
  change.svcId = svcId;
  change.writeName = ctx.mirror.names.get(svcId) !== key;
  const kept = t.frontends.size === 0 || t.block.length === 0 ? 0 : reusableBlock(ctx.mirror, cur, t);
  if (kept !== undefined) return kept;
  const backendId = ctx.backendIds.allocate();
  if (backendId === undefined) return { key, message: `service port ${key}: no free backend block id` };
  change.block = { backendId, values: t.block };
  return backendId;
}

/** Phase 3: the frontend writes and deletes of an added or updated service port, and what leaves. */
function diffService(t: ServiceTarget, cur: ProgrammedService | undefined, backendId: number, mirror: Mirror, claims: Claims, change: ServiceChange): void {
  const { svcId } = change;
  for (const [id, fe] of t.frontends) {
    const value: ServiceValue = {
      svc_id: svcId, backend_id: backendId, count: t.count, local_count: t.localCount,
      flags: fe.flags, affinity_timeout_s: t.affinityTimeoutSec,
    };
    const prev = mirror.frontends.get(id);
    if (prev && sameValue(prev.value, value)) continue;
    change.frontendSets.push([fe.key, value]);
    change.previous.set(id, prev);
  }
  if (!cur) return;
  for (const [id, fe] of cur.frontends) {
    if (t.frontends.has(id) || claims.has(id)) continue;
    change.frontendDeletes.push(fe.key);
    change.previous.set(id, fe);
  }
  const hadAffinity = [...cur.frontends.values()].some((f) => f.value.affinity_timeout_s > 0);
  change.flushAffinity = hadAffinity && t.affinityTimeoutSec === 0;
  if (change.block || t.frontends.size === 0) {
    // Without a frontend nothing reaches the block any more: every backend has left.
    const kept = new Set(t.frontends.size === 0 ? [] : t.block.map((b) => endpointId(b.addr, b.port)));
    for (const [id, ep] of programmedEndpoints(mirror, cur)) {
      if (!kept.has(id)) change.removedEndpoints.push({ svcId, proto: t.proto, ...ep });
    }
  }
}

/** Phase 3, whole: the change of one added or updated service port, or an error. */
function planService(key: string, t: ServiceTarget, cur: ProgrammedService | undefined, ctx: PlanContext, claims: Claims): ServiceChange | PlanProblem {
  const change = emptyChange(key, 0, cur ? 'update' : 'add');
  const backendId = assignIds(key, t, cur, ctx, change);
  if (typeof backendId !== 'number') return backendId;
  diffService(t, cur, backendId, ctx.mirror, claims, change);
  const writes = change.writeName || change.block !== null || change.frontendSets.length + change.frontendDeletes.length > 0;
  if (cur && !writes) change.action = 'unchanged';
  return change;
}

/** Phase 4: a programmed service port no longer desired (and not kept) is removed. */
function planRemoval(key: string, cur: ProgrammedService, mirror: Mirror, claims: Claims): ServiceChange {
  const change = emptyChange(key, cur.svcId, 'remove');
  const proto = protoOf(cur);
  for (const [id, fe] of cur.frontends) {
    if (claims.has(id)) continue; // another service takes this address over in this apply
    change.frontendDeletes.push(fe.key);
    change.previous.set(id, fe);
  }
  change.deleteName = mirror.names.get(cur.svcId) === key;
  change.flushAffinity = true;
  for (const ep of programmedEndpoints(mirror, cur).values()) change.removedEndpoints.push({ svcId: cur.svcId, proto, ...ep });
  return change;
}

/**
 * The diff of desired against the maps. `only`: plan just these service-port keys (what the
 * model says changed) and take every other one as unchanged — an endpoint change then costs one
 * service, not all of them. Without it, every desired and programmed key is planned.
 * Phases: scope (which keys), targets and frontend claims, the change of each desired port, the
 * removal of each programmed port no longer desired.
 */
export function planApply(desired: DesiredState, ctx: PlanContext, only?: ReadonlySet<string>): Plan {
  return runSteps(planApplySteps(desired, ctx, only));
}

/** planApply, pausing every ITEMS_PER_STEP service ports (src/model/steps.ts). */
export function* planApplySteps(desired: DesiredState, ctx: PlanContext, only?: ReadonlySet<string>): Steps<Plan> {
  const plan: Plan = { changes: [], errors: [], unsupported: 0, kinds: new Map(), keep: new Set(), planned: new Set() };
  const { current, wanted } = planScope(desired, ctx.mirror, only);
  for (const key of current.keys()) plan.planned.add(key);
  for (const [key] of wanted) plan.planned.add(key);
  const { targets, claims } = yield* resolveTargets(wanted, ctx, only, plan);
  let n = 0;
  for (const [key, t] of targets) {
    if (++n % ITEMS_PER_STEP === 0) yield;
    const planned = planService(key, t, current.get(key), ctx, claims);
    if ('action' in planned) plan.changes.push(planned);
    else plan.errors.push(planned);
  }
  for (const [key, cur] of current) {
    if (!targets.has(key) && !plan.keep.has(key)) plan.changes.push(planRemoval(key, cur, ctx.mirror, claims));
  }
  return plan;
}
