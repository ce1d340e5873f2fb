// DesiredServicePort → what its map entries must be (frontend keys with flags, the backend block).
// Pure; validates the model's output so a bad value becomes an error naming the service port,
// the field and the value instead of a codec exception deep inside a batch write.
import { isIPv6 } from 'node:net';
import { isIpv4Text } from '../bpf/ip-bytes.js';
import type { BackendValue4, FrontendKey4 } from '../bpf/sluice-structs.js';
import { BE_F, FRONTEND_KIND, IPPROTO, SCOPE, SVC_F, SVC_F_KIND_SHIFT, SVC_NAME_LEN } from '../bpf/sluice-structs.js';

const SVC_F_KIND_MASK = SVC_F.KIND_MASK;
import { flatText, type FlatText } from '../model/flat-text.js';
import type { BackendList } from '../model/backend-list.js';
import type { DesiredServicePort, FrontendKind } from '../model/types.js';

/** SL_SVC_NAME_LEN - 1: the service-port key is stored NUL-terminated in sl_svc_meta. */
export const MAX_KEY_BYTES = SVC_NAME_LEN - 1;
const U32_MAX = 0xffffffff;

export interface FrontendTarget {
  key: FrontendKey4;
  kind: FrontendKind;
  /** SVC_F bits of this frontend (the service's plus EXTERNAL / SRC_RANGES). */
  flags: number;
}

export interface ServiceTarget {
  key: string;
  proto: number;
  /** By frontendId(). */
  frontends: Map<FlatText, FrontendTarget>;
  /** The block: ordinals [0, count) the Cluster set, then the Local set. */
  block: BackendValue4[];
  count: number;
  localCount: number;
  affinityTimeoutSec: number;
}

export class DesiredPortError extends Error {
  constructor(
    readonly serviceKey: string,
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`service port ${serviceKey}: ${field} ${JSON.stringify(value)} ${reason}`);
    this.name = 'DesiredPortError';
  }
}

/** The identity of a frontend key, for maps keyed by it. */
export function frontendId(k: FrontendKey4): FlatText {
  return flatText(k.addr, ':', k.port, '/', k.proto, '/', k.scope);
}

/** Backend identity for UDP flow cleanup and affinity: address and port. */
export function endpointId(addr: string, port: number): string {
  return `${addr}:${port}`;
}

export function sameBackend(a: BackendValue4, b: BackendValue4): boolean {
  return a.addr === b.addr && a.port === b.port && a.flags === b.flags && a.node_addr === b.node_addr;
}

const PROTOCOLS: Record<string, number> = { TCP: IPPROTO.TCP, UDP: IPPROTO.UDP, SCTP: IPPROTO.SCTP };
const KINDS = new Set<FrontendKind>(['ClusterIP', 'NodePort', 'ExternalIP', 'LoadBalancer']);

const isPortNumber = (port: unknown): port is number => typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535;

// The field path is built only for the error: these checks run for every backend (131,500 at a
// 10,000-Service cold start), and a path string per check was garbage for the collector.
function checkPort(svc: string, field: () => string, port: unknown): number {
  if (!isPortNumber(port)) throw new DesiredPortError(svc, field(), port, 'is not a port number from 1 to 65535');
  return port;
}

function checkIPv4(svc: string, field: () => string, ip: unknown): string {
  if (!isIpv4Text(ip)) throw new DesiredPortError(svc, field(), ip, 'is not an IPv4 address');
  return ip;
}

/** An IPv6 address as the maps take it: plain text, no zone, not IPv4-mapped (the model's canonical form). */
const isIpv6Text = (ip: unknown): ip is string => typeof ip === 'string' && isIPv6(ip) && !ip.includes('%') && !ip.includes('.');

function checkIPv6(svc: string, field: () => string, ip: unknown): string {
  if (!isIpv6Text(ip)) throw new DesiredPortError(svc, field(), ip, 'is not an IPv6 address');
  return ip;
}

/** The address checks of one family's maps. */
interface FamilyAddresses {
  family: 'IPv4' | 'IPv6';
  is: (ip: unknown) => ip is string;
  check: (svc: string, field: () => string, ip: unknown) => string;
  /** node_addr when the node's address (of this family) is unknown. */
  unknown: string;
}
const FAMILY_ADDRESSES: Record<'IPv4' | 'IPv6', FamilyAddresses> = {
  IPv4: { family: 'IPv4', is: isIpv4Text, check: checkIPv4, unknown: '0.0.0.0' },
  IPv6: { family: 'IPv6', is: isIpv6Text, check: checkIPv6, unknown: '::' },
};

export interface TargetOptions {
  /**
   * The address of a node by name in the service port's family (backend node_addr); one of
   * another family, or unknown → 0.0.0.0 (IPv4) or :: (IPv6).
   */
  nodeAddress?: (nodeName: string, family: 'IPv4' | 'IPv6') => string | undefined;
}

function backendValue(svc: string, set: string, list: BackendList, i: number, opts: TargetOptions, fam: FamilyAddresses): BackendValue4 {
  const nodeName = list.nodeName(i);
  const nodeAddr = nodeName ? opts.nodeAddress?.(nodeName, fam.family) : undefined;
  const ip = list.ip(i);
  const port = list.port(i);
  return {
    addr: fam.is(ip) ? ip : fam.check(svc, () => `${set}[${i}].ip`, ip),
    port: isPortNumber(port) ? port : checkPort(svc, () => `${set}[${i}].port`, port),
    flags: (list.local(i) ? BE_F.LOCAL : 0) | (list.terminating(i) ? BE_F.TERMINATING : 0),
    node_addr: nodeAddr && fam.is(nodeAddr) ? nodeAddr : fam.unknown,
  };
}

/**
 * The map entries a DesiredServicePort needs, in its family's maps (the IPv6 values have the
 * IPv4 ones' shapes, addresses as IPv6 text). Throws DesiredPortError on bad input.
 */
export function serviceTarget(port: DesiredServicePort, opts: TargetOptions = {}): ServiceTarget {
  const svc = typeof port.key === 'string' ? port.key : String(port.key);
  if (typeof port.key !== 'string' || port.key === '') throw new DesiredPortError(svc, 'key', port.key, 'is not a service-port key');
  if (Buffer.byteLength(port.key, 'utf8') > MAX_KEY_BYTES) {
    throw new DesiredPortError(svc, 'key', port.key, `is longer than ${MAX_KEY_BYTES} bytes (sl_svc_meta.name)`);
  }
  const fam = port.family === 'IPv6' ? FAMILY_ADDRESSES.IPv6 : port.family === 'IPv4' ? FAMILY_ADDRESSES.IPv4 : undefined;
  if (!fam) throw new DesiredPortError(svc, 'family', port.family, "is not 'IPv4' or 'IPv6'");
  const proto = PROTOCOLS[port.protocol];
  if (proto === undefined) throw new DesiredPortError(svc, 'protocol', port.protocol, 'is not TCP, UDP or SCTP');
  const timeout = port.affinityTimeoutSec;
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > U32_MAX) {
    throw new DesiredPortError(svc, 'affinityTimeoutSec', timeout, 'is not a whole number of seconds from 0 to 2^32-1');
  }
  const base =
    (port.internalLocal ? SVC_F.INTERNAL_LOCAL : 0) |
    (port.externalLocal ? SVC_F.EXTERNAL_LOCAL : 0) |
    (timeout > 0 ? SVC_F.AFFINITY : 0);
  const sourceRanges = port.loadBalancerSourceRanges.length > 0 || port.loadBalancerSourcesClosed === true;

  const frontends = new Map<FlatText, FrontendTarget>();
  port.frontends.forEach((f, i) => {
    if (!KINDS.has(f.kind)) throw new DesiredPortError(svc, `frontends[${i}].kind`, f.kind, 'is not a frontend kind');
    const key: FrontendKey4 = {
      addr: fam.check(svc, () => `frontends[${i}].ip`, f.ip),
      port: checkPort(svc, () => `frontends[${i}].port`, f.port),
      proto,
      scope: SCOPE.ANY,
    };
    const flags =
      base |
      (f.kind !== 'ClusterIP' ? SVC_F.EXTERNAL : 0) |
      (f.kind === 'LoadBalancer' && sourceRanges ? SVC_F.SRC_RANGES : 0);
    const id = frontendId(key);
    const seen = frontends.get(id);
    // The same address:port listed twice (an external IP that is also the LB VIP): one entry,
    // counted under the kind listed first.
    frontends.set(id, seen
      ? { ...seen, flags: seen.flags | (flags & ~SVC_F_KIND_MASK) }
      : { key, kind: f.kind, flags: flags | (FRONTEND_KIND[f.kind] << SVC_F_KIND_SHIFT) });
  });

  const count = port.clusterBackends.length;
  const localCount = port.localBackends.length;
  const block = new Array<BackendValue4>(count + localCount);
  for (let i = 0; i < count; i++) block[i] = backendValue(svc, 'clusterBackends', port.clusterBackends, i, opts, fam);
  for (let i = 0; i < localCount; i++) block[count + i] = backendValue(svc, 'localBackends', port.localBackends, i, opts, fam);
  return {
    key: port.key,
    proto,
    frontends,
    block,
    count,
    localCount,
    affinityTimeoutSec: timeout,
  };
}
