// The node's own addresses and its SNAT configuration, for external traffic (bpf/host.bpf.c):
// - NodePort addresses are chosen as kube-proxy does, from the addresses (IPv4 and IPv6) on the
//   host's own interfaces (filtered by --node-port-addresses in the model), not from the Node
//   object;
// - external flows to a remote backend are SNATed to one node address (the Node's InternalIP
//   when it sits on a host-facing interface, else the first address of one) and a port from
//   --snat-port-range, which must lie outside net.ipv4.ip_local_port_range so no connection of
//   the node's own can hold the same tuple (checked here, reported when it does not).
import { readFile } from 'node:fs/promises';
import { FRONTEND_KIND_NAMES, nodeConfig4, nodeConfig6, svcCounters, u32Key } from '../bpf/sluice-structs.js';
import { decodePerCpu } from '../bpf/codec.js';
import type { ExternalCounterView } from '../admin/types.js';
import type { NativeMap } from '../bpf/native.js';
import { runCommand } from '../datapath/command.js';
import { interfaceMatcher } from './interfaces.js';

export interface HostAddress {
  ifname: string;
  address: string;
}

/**
 * Parses `ip -o addr show` lines of both families: "2: eth0    inet 192.0.2.1/24 brd ... scope
 * global eth0" and "2: eth0    inet6 2001:db8::1/64 scope global \ ...". An IPv6 address whose
 * duplicate address detection failed (`dadfailed`) is not the host's, and a privacy address
 * (`temporary`, RFC 8981) is for outgoing connections and changes every few hours: both are
 * left out.
 */
export function parseIpAddrShow(text: string): HostAddress[] {
  const out: HostAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+?)(?:@\S+)?\s+(?:inet\s+(\d+\.\d+\.\d+\.\d+)|inet6\s+([0-9a-fA-F:]+))\/\d+(.*)$/.exec(line);
    if (!m || (m[3] && /\b(dadfailed|temporary)\b/.test(m[4] ?? ''))) continue;
    out.push({ ifname: m[1] as string, address: (m[2] ?? m[3]) as string });
  }
  return out;
}

/** The IPv4 and IPv6 addresses of every interface of this network namespace. */
export async function readHostAddresses(): Promise<HostAddress[]> {
  const { stdout } = await runCommand(['ip', '-o', 'addr', 'show']);
  return parseIpAddrShow(stdout);
}

const isIpv6 = (address: string): boolean => address.includes(':');

/**
 * Addresses for NodePorts: every interface's but loopback's (127/8, ::1) and IPv6 link-local
 * ones (fe80::/10: the same address can sit on every interface, so it names no one
 * destination); the model filters them by --node-port-addresses.
 */
export function nodePortCandidates(addrs: readonly HostAddress[]): string[] {
  const usable = (a: HostAddress): boolean => a.ifname !== 'lo' && !a.address.startsWith('127.') && a.address !== '::1' && !/^fe[89ab]/i.test(a.address);
  return [...new Set(addrs.filter(usable).map((a) => a.address))].sort();
}

/**
 * The SNAT source address: the Node's own address (InternalIP) when a host-facing interface
 * carries it, else the first address on a host-facing interface; undefined when there is none.
 */
export function snatAddress(addrs: readonly HostAddress[], hostPatterns: readonly string[], nodeIp: string | undefined): string | undefined {
  const matches = interfaceMatcher([...hostPatterns]);
  // sl_node_config holds the IPv4 source; the IPv6 one is snatAddress6's (sl_node_config6).
  const onHost = addrs.filter((a) => matches(a.ifname) && !isIpv6(a.address));
  return onHost.find((a) => a.address === nodeIp)?.address ?? onHost[0]?.address;
}

/**
 * The IPv6 SNAT source (sl_node_config6), chosen as snatAddress among the host-facing
 * interfaces' IPv6 addresses; never a link-local one (fe80::/10: it names no one destination,
 * and a remote backend could not answer it).
 */
export function snatAddress6(addrs: readonly HostAddress[], hostPatterns: readonly string[], nodeIp6: string | undefined): string | undefined {
  const matches = interfaceMatcher([...hostPatterns]);
  const onHost = addrs.filter((a) => matches(a.ifname) && isIpv6(a.address) && a.address !== '::1' && !/^fe[89ab]/i.test(a.address));
  return onHost.find((a) => a.address === nodeIp6)?.address ?? onHost[0]?.address;
}

export interface PortRange {
  min: number;
  max: number;
}

/** Why `snat` is unsafe next to the node's ephemeral port range, or undefined when it is fine. */
export function snatRangeProblem(snat: PortRange, local: PortRange): string | undefined {
  if (snat.max < local.min || snat.min > local.max) return undefined;
  return `the SNAT port range ${snat.min}-${snat.max} overlaps net.ipv4.ip_local_port_range ${local.min}-${local.max}: ` +
    'an SNATed flow could take a tuple a connection of the node holds; move one of them (--snat-port-range)';
}

/** net.ipv4.ip_local_port_range of this namespace. */
export async function localPortRange(): Promise<PortRange> {
  const [min, max] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
  return { min: min ?? 32768, max: max ?? 60999 };
}

/** Writes sl_node_config (one slot): the SNAT address ('0.0.0.0' = none) and port range. */
export function writeNodeConfig(map: NativeMap, address: string | undefined, range: PortRange): void {
  map.update(u32Key.encode(0), nodeConfig4.encode({ snat_addr: address ?? '0.0.0.0', snat_port_min: range.min, snat_port_max: range.max }));
}

/** Writes sl_node_config6 (one slot): the IPv6 SNAT address ('::' = none) and the same port range. */
export function writeNodeConfig6(map: NativeMap, address: string | undefined, range: PortRange): void {
  map.update(u32Key.encode(0), nodeConfig6.encode({ snat_addr: address ?? '::', snat_port_min: range.min, snat_port_max: range.max }));
}

/** sl_ext_counters (per-CPU, by frontend kind) summed over CPUs, for counters views and metrics. */
export function readExternalCounters(map: NativeMap, cpus: number): ExternalCounterView[] {
  return FRONTEND_KIND_NAMES.map((kind, i) => {
    const buf = map.lookup(u32Key.encode(i));
    const sum = { packets: 0n, bytes: 0n, connections: 0n, rejected: 0n };
    for (const c of buf ? decodePerCpu(svcCounters, buf, cpus) : []) {
      sum.packets += c.packets;
      sum.bytes += c.bytes;
      sum.connections += c.connections;
      sum.rejected += c.rejected;
    }
    return { kind, packets: Number(sum.packets), bytes: Number(sum.bytes), connections: Number(sum.connections), refused: Number(sum.rejected) };
  });
}
