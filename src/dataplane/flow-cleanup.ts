// Removing state that points at backends a service no longer has. For UDP there is no connection
// end to wait for, so a conntrack entry (TC path) or a socket reverse-NAT entry (connect-time path)
// to a removed backend would keep a flow on a dead endpoint — kube-proxy's stale-UDP-conntrack
// black hole. Those go at once. TCP flows are left to finish on their backend; only their affinity
// entries go (a new connection must not be steered to a backend that left).
import type { StructCodec } from '../bpf/codec.js';
import { ipv4ToNumber, isIpv4Text } from '../bpf/ip-bytes.js';
import type { CtKey4, CtValue4 } from '../bpf/sluice-structs.js';
import { affinityKey4, affinityValue4, CT_F, CT_TYPE, ctKey4, ctValue4, IPPROTO, sockRevnatKey4, sockRevnatValue4 } from '../bpf/sluice-structs.js';
import type { RemovedEndpoint } from './apply-plan.js';
import type { RawMatch, ServiceTables } from './tables.js';

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

// The maps are scanned as raw bytes (Table.filterRaw): a conntrack table of 200k entries took
// ~350 ms to decode in full for one removed UDP endpoint, blocking every other change meanwhile.
// Offsets come from the codecs, whose layout is checked against the objects' BTF at load.
function offsetOf(codec: { name: string; members: StructCodec<never>["members"] }, name: string, size: number): number {
  const m = codec.members.find((x) => x.name === name);
  if (!m || m.size !== size) throw new Error(`flow cleanup: ${codec.name}.${name} is not a ${size}-byte member`);
  return m.offset;
}
const CT_KEY = { saddr: offsetOf(ctKey4, 'saddr', 4), sport: offsetOf(ctKey4, 'sport', 2), proto: offsetOf(ctKey4, 'proto', 1) };
const CT_VALUE = { natAddr: offsetOf(ctValue4, 'nat_addr', 4), natPort: offsetOf(ctValue4, 'nat_port', 2), type: offsetOf(ctValue4, 'type', 1), svcId: offsetOf(ctValue4, 'svc_id', 4) };
const AFFINITY = { svcId: offsetOf(affinityKey4, 'svc_id', 4), addr: offsetOf(affinityValue4, 'backend_addr', 4), port: offsetOf(affinityValue4, 'backend_port', 2) };
const REVNAT = { addr: offsetOf(sockRevnatKey4, 'backend_addr', 4), port: offsetOf(sockRevnatKey4, 'backend_port', 2), svcId: offsetOf(sockRevnatValue4, 'svc_id', 4) };

/** addr:port as one number (an IPv4 address is 32 bits, a port 16: exact in a double). */
const endpointNumber = (addr: number, port: number): number => addr * 65536 + port;

/** Removed endpoints by addr:port, with the svc_ids each left. */
class EndpointIndex {
  private readonly byEndpoint = new Map<number, Set<number>>();

  constructor(endpoints: readonly RemovedEndpoint[]) {
    for (const e of endpoints) {
      if (!isIpv4Text(e.addr)) continue; // the IPv4 maps hold no other
      const id = endpointNumber(ipv4ToNumber(e.addr), e.port);
      let svcIds = this.byEndpoint.get(id);
      if (!svcIds) this.byEndpoint.set(id, (svcIds = new Set()));
      svcIds.add(e.svcId);
    }
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  /** Whether svc_id lost the endpoint whose address (u32, network order) and port sit at these offsets. */
  has(svcId: number, addrBuf: Buffer, addrAt: number, portBuf: Buffer, portAt: number): boolean {
    const svcIds = this.byEndpoint.get(endpointNumber(addrBuf.readUInt32BE(addrAt), portBuf.readUInt16BE(portAt)));
    return svcIds !== undefined && svcIds.has(svcId);
  }
}

function ctId(k: CtKey4): string {
  return `${k.saddr}:${k.sport}>${k.daddr}:${k.dport}/${k.proto}`;
}

/** The key of a FORWARD entry's REVERSE twin (bpf/lib/conntrack.h, sl_ct_create4). */
export function reverseKeyOf(fwd: CtKey4, val: CtValue4): CtKey4 {
  const hairpin = (val.flags & CT_F.HAIRPIN) !== 0;
  const snat = (val.flags & CT_F.SNAT) !== 0;
  return {
    saddr: val.nat_addr, daddr: hairpin || snat ? val.nat_saddr : fwd.saddr,
    sport: val.nat_port, dport: snat ? val.nat_sport : fwd.sport, proto: fwd.proto,
  };
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
  const all = new EndpointIndex(req.endpoints);
  const udp = new EndpointIndex(req.endpoints.filter((e) => e.proto === IPPROTO.UDP));

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
    const affinityMatch: RawMatch = (k, ka, v, va) => {
      const svcId = k.readUInt32LE(ka + AFFINITY.svcId);
      return req.affinitySvcIds.has(svcId) || all.has(svcId, v, va + AFFINITY.addr, v, va + AFFINITY.port);
    };
    res.affinityDeleted = run('cleaning sl_affinity4', () => deleteAll(tables.affinity, tables.affinity.filterRaw(affinityMatch).map(([k]) => k)));
  }
  if (udp.size === 0) return res;

  res.ctDeleted = run('cleaning sl_ct4', () => {
    // FORWARD entries name the backend in their value, REVERSE ones as their source.
    const ctMatch: RawMatch = (k, ka, v, va) => {
      if (k[ka + CT_KEY.proto] !== IPPROTO.UDP) return false;
      const type = v[va + CT_VALUE.type];
      const svcId = v.readUInt32LE(va + CT_VALUE.svcId);
      if (type === CT_TYPE.FORWARD) return udp.has(svcId, v, va + CT_VALUE.natAddr, v, va + CT_VALUE.natPort);
      return type === CT_TYPE.REVERSE && udp.has(svcId, k, ka + CT_KEY.saddr, k, ka + CT_KEY.sport);
    };
    const doomed = new Map<string, CtKey4>();
    for (const [k, v] of tables.ct.filterRaw(ctMatch)) {
      doomed.set(ctId(k), k);
      if (v.type === CT_TYPE.FORWARD) {
        const rev = reverseKeyOf(k, v);
        doomed.set(ctId(rev), rev);
      }
    }
    return deleteAll(tables.ct, [...doomed.values()]);
  });

  try {
    hooks.beforeSockRevnatDelete?.();
  } catch (err) {
    res.errors.push(`UDP socket sweep: ${(err as Error).message}`);
  }
  const revnatMatch: RawMatch = (k, ka, v, va) => udp.has(v.readUInt32LE(va + REVNAT.svcId), k, ka + REVNAT.addr, k, ka + REVNAT.port);
  res.sockRevnatDeleted = run('cleaning sl_sock_revnat4', () => deleteAll(tables.sockRevnat, tables.sockRevnat.filterRaw(revnatMatch).map(([k]) => k)));
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
