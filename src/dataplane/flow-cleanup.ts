// Removing state that points at backends a service no longer has. For UDP there is no connection
// end to wait for, so a conntrack entry (TC path) or a socket reverse-NAT entry (connect-time path)
// to a removed backend would keep a flow on a dead endpoint — kube-proxy's stale-UDP-conntrack
// black hole. Those go at once. TCP flows are left to finish on their backend; only their affinity
// entries go (a new connection must not be steered to a backend that left).
import type { CtKey4, CtValue4 } from '../bpf/sluice-structs.js';
import { CT_F, CT_TYPE, IPPROTO } from '../bpf/sluice-structs.js';
import type { RemovedEndpoint } from './apply-plan.js';
import type { ServiceTables } from './tables.js';

export interface FlowCleanupRequest {
  endpoints: RemovedEndpoint[];
  /** Services whose affinity entries all go (removed, or affinity switched off). */
  affinitySvcIds: Set<number>;
}

export interface FlowCleanupResult {
  ctDeleted: number;
  sockRevnatDeleted: number;
  affinityDeleted: number;
  /** Element and read failures; the request should be retried when non-empty. */
  errors: string[];
  /** Element calls made (for the apply's op counts). */
  deletes: number;
  batchCalls: number;
}

const epKey = (svcId: number, addr: string, port: number): string => `${svcId}|${addr}:${port}`;

function ctId(k: CtKey4): string {
  return `${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`;
}

/** The key of a FORWARD entry's REVERSE twin (bpf/lib/conntrack.h, sl_ct_create4). */
export function reverseKeyOf(fwd: CtKey4, val: CtValue4): CtKey4 {
  const hairpin = (val.flags & CT_F.HAIRPIN) !== 0;
  return { saddr: val.nat_addr, daddr: hairpin ? val.nat_saddr : fwd.saddr, sport: val.nat_port, dport: fwd.sport, proto: fwd.proto };
}

export interface FlowCleanupHooks {
  /**
   * Runs before the socket reverse-NAT entries of removed UDP backends are deleted: the socket
   * sweep (bpf/sockdestroy.bpf.c) finds connected UDP sockets by those entries.
   */
  beforeSockRevnatDelete?: () => void;
}

export function cleanUpFlows(tables: ServiceTables, req: FlowCleanupRequest, hooks: FlowCleanupHooks = {}): FlowCleanupResult {
  const res: FlowCleanupResult = { ctDeleted: 0, sockRevnatDeleted: 0, affinityDeleted: 0, errors: [], deletes: 0, batchCalls: 0 };
  const all = new Set(req.endpoints.map((e) => epKey(e.svcId, e.addr, e.port)));
  const udp = new Set(req.endpoints.filter((e) => e.proto === IPPROTO.UDP).map((e) => epKey(e.svcId, e.addr, e.port)));

  const run = (what: string, fn: () => number): number => {
    try {
      return fn();
    } catch (err) {
      res.errors.push(`${what}: ${(err as Error).message}`);
      return 0;
    }
  };
  const deleteAll = <K>(table: { name: string; deleteMany(keys: readonly K[]): { done: number; failures: { error: Error }[] } }, keys: K[]): number => {
    if (keys.length === 0) return 0;
    const out = table.deleteMany(keys);
    res.batchCalls++;
    res.deletes += keys.length;
    for (const f of out.failures) res.errors.push(`deleting from ${table.name}: ${f.error.message}`);
    return out.done;
  };

  if (all.size > 0 || req.affinitySvcIds.size > 0) {
    res.affinityDeleted = run('cleaning sl_affinity4', () =>
      deleteAll(tables.affinity, tables.affinity.entries()
        .filter(([k, v]) => req.affinitySvcIds.has(k.svc_id) || all.has(epKey(k.svc_id, v.backend_addr, v.backend_port)))
        .map(([k]) => k)),
    );
  }
  if (udp.size === 0) return res;

  res.ctDeleted = run('cleaning sl_ct4', () => {
    const doomed = new Map<string, CtKey4>();
    for (const [k, v] of tables.ct.entries()) {
      if (k.proto !== IPPROTO.UDP) continue;
      if (v.type === CT_TYPE.FORWARD && udp.has(epKey(v.svc_id, v.nat_addr, v.nat_port))) {
        doomed.set(ctId(k), k);
        const rev = reverseKeyOf(k, v);
        doomed.set(ctId(rev), rev);
      } else if (v.type === CT_TYPE.REVERSE && udp.has(epKey(v.svc_id, k.saddr, k.sport))) {
        doomed.set(ctId(k), k);
      }
    }
    return deleteAll(tables.ct, [...doomed.values()]);
  });

  try {
    hooks.beforeSockRevnatDelete?.();
  } catch (err) {
    res.errors.push(`UDP socket sweep: ${(err as Error).message}`);
  }
  res.sockRevnatDeleted = run('cleaning sl_sock_revnat4', () =>
    deleteAll(tables.sockRevnat, tables.sockRevnat.entries()
      .filter(([k, v]) => udp.has(epKey(v.svc_id, k.backend_addr, k.backend_port)))
      .map(([k]) => k)),
  );
  return res;
}

/** Deletes every conntrack entry of these services (both protocols). Returns how many went. */
export function flushServiceConntrack(tables: ServiceTables, svcIds: ReadonlySet<number>): number {
  if (svcIds.size === 0) return 0;
  const keys = tables.ct.entries().filter(([, v]) => svcIds.has(v.svc_id)).map(([k]) => k);
  if (keys.length === 0) return 0;
  const out = tables.ct.deleteMany(keys);
  if (out.failures.length > 0) {
    const first = out.failures[0]?.error.message ?? '';
    throw new Error(`flushing conntrack: ${out.failures.length} of ${keys.length} entries could not be deleted (first: ${first})`);
  }
  return out.done;
}
