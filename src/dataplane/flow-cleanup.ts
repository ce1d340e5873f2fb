// Removing state that points at backends a service no longer has. For UDP there is no connection
// end to wait for, so a conntrack entry (TC path) or a socket reverse-NAT entry (connect-time path)
// to a removed backend would keep a flow on a dead endpoint — kube-proxy's stale-UDP-conntrack
// black hole. Those go at once. TCP flows are left to finish on their backend; only their affinity
// entries go (a new connection must not be steered to a backend that left).
import type { StructCodec } from '../bpf/codec.js';
import { isIPv6 } from 'node:net';
import { ipv4ToNumber, ipv6ToBuffer, isIpv4Text } from '../bpf/ip-bytes.js';
import type { CtKey4, CtValue4 } from '../bpf/sluice-structs.js';
import {
  affinityKey4, affinityKey6, affinityValue4, affinityValue6, CT_F, CT_TYPE, ctKey4, ctKey6, ctValue4, ctValue6, IPPROTO,
  sockRevnatKey4, sockRevnatKey6, sockRevnatValue4, sockRevnatValue6,
} from '../bpf/sluice-structs.js';
import type { RemovedEndpoint } from './apply-plan.js';
import type { RawMatch, ServiceTables, TableFamily } from './tables.js';

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
/** The byte offsets the scans read, per family (the IPv6 structs have the same members, 16-byte addresses). */
function layoutOf(family: TableFamily) {
  const v6 = family === 'IPv6';
  const a = v6 ? 16 : 4;
  const [ck, cv, ak, av, rk, rv] = v6
    ? [ctKey6, ctValue6, affinityKey6, affinityValue6, sockRevnatKey6, sockRevnatValue6]
    : [ctKey4, ctValue4, affinityKey4, affinityValue4, sockRevnatKey4, sockRevnatValue4];
  return {
    ct: { saddr: offsetOf(ck, 'saddr', a), sport: offsetOf(ck, 'sport', 2), proto: offsetOf(ck, 'proto', 1) },
    ctValue: { natAddr: offsetOf(cv, 'nat_addr', a), natPort: offsetOf(cv, 'nat_port', 2), type: offsetOf(cv, 'type', 1), svcId: offsetOf(cv, 'svc_id', 4) },
    affinity: { svcId: offsetOf(ak, 'svc_id', 4), addr: offsetOf(av, 'backend_addr', a), port: offsetOf(av, 'backend_port', 2) },
    revnat: { addr: offsetOf(rk, 'backend_addr', a), port: offsetOf(rk, 'backend_port', 2), svcId: offsetOf(rv, 'svc_id', 4) },
  };
}
const LAYOUTS = { IPv4: layoutOf('IPv4'), IPv6: layoutOf('IPv6') } as const;

/** addr:port as one number (an IPv4 address is 32 bits, a port 16: exact in a double). */
const endpointNumber = (addr: number, port: number): number => addr * 65536 + port;

/** Removed endpoints by addr:port, with the svc_ids each left; an IPv6 one by its 16 bytes as a latin1 string and port. */
class EndpointIndex {
  private readonly byEndpoint = new Map<number | string, Set<number>>();

  constructor(
    endpoints: readonly RemovedEndpoint[],
    private readonly family: TableFamily = 'IPv4',
  ) {
    for (const e of endpoints) {
      let id: number | string;
      if (family === 'IPv4') {
        if (!isIpv4Text(e.addr)) continue; // the IPv4 maps hold no other
        id = endpointNumber(ipv4ToNumber(e.addr), e.port);
      } else {
        if (!isIPv6(e.addr)) continue;
        id = `${ipv6ToBuffer(e.addr).toString('latin1')}|${e.port}`;
      }
      let svcIds = this.byEndpoint.get(id);
      if (!svcIds) this.byEndpoint.set(id, (svcIds = new Set()));
      svcIds.add(e.svcId);
    }
  }

  get size(): number {
    return this.byEndpoint.size;
  }

  /** Whether svc_id lost the endpoint whose address (network order) and port sit at these offsets. */
  has(svcId: number, addrBuf: Buffer, addrAt: number, portBuf: Buffer, portAt: number): boolean {
    const port = portBuf.readUInt16BE(portAt);
    const id = this.family === 'IPv4' ? endpointNumber(addrBuf.readUInt32BE(addrAt), port) : `${addrBuf.toString('latin1', addrAt, addrAt + 16)}|${port}`;
    const svcIds = this.byEndpoint.get(id);
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

export function cleanUpFlows(tables: ServiceTables, req: FlowCleanupRequest, hooks: FlowCleanupHooks = {}, family: TableFamily = 'IPv4'): FlowCleanupResult {
  const res: FlowCleanupResult = { ctDeleted: 0, sockRevnatDeleted: 0, affinityDeleted: 0, errors: [], deletes: 0, batchCalls: 0 };
  const all = new EndpointIndex(req.endpoints, family);
  const udp = new EndpointIndex(req.endpoints.filter((e) => e.proto === IPPROTO.UDP), family);
  const { ct: CT_KEY, ctValue: CT_VALUE, affinity: AFFINITY, revnat: REVNAT } = LAYOUTS[family];

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
    res.affinityDeleted = run(`cleaning ${tables.affinity.name}`, () => deleteAll(tables.affinity, tables.affinity.filterRaw(affinityMatch).map(([k]) => k)));
  }
  if (udp.size === 0) return res;

  res.ctDeleted = run(`cleaning ${tables.ct.name}`, () => {
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
  res.sockRevnatDeleted = run(`cleaning ${tables.sockRevnat.name}`, () => deleteAll(tables.sockRevnat, tables.sockRevnat.filterRaw(revnatMatch).map(([k]) => k)));
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
