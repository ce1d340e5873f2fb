// The ruleset kube-proxy's nftables mode writes (pkg/proxy/nftables, Kubernetes 1.29-1.30 layout),
// generated from the same desired state as the iptables-mode generator (kube-proxy-rules.ts), for
// the connect bench's second kube-proxy baseline and the tests. One table per IP family, as
// kube-proxy runs one proxier per family: `ip kube-proxy` (the default) or, with `family: 'IPv6'`,
// `ip6 kube-proxy` — the same chains and maps over `ipv6_addr` keys, `ip6 saddr`/`ip6 daddr` matches,
// bracketed dnat targets and `ip6 daddr != ::1` for NodePorts (pkg/proxy/nftables setupNFTables):
//
//   nat-prerouting/nat-output (dstnat)  → services: one lookup of ip daddr . l4proto . dport in the
//       service-ips verdict map (ClusterIPs, external IPs, LoadBalancer IPs), then for local
//       destinations l4proto . dport in service-nodeports. O(1) in the number of services: the
//       difference from iptables mode, whose KUBE-SERVICES is walked rule by rule.
//   service-<h>-ns/name/proto/port: the masquerade mark for traffic from outside the cluster CIDR,
//       then `numgen random mod N vmap { 0 : goto endpoint-…, … }` (local-<h>-… the same over the
//       local endpoints, for a Local traffic policy).
//   external-<h>-…: what external frontends go to (mark, or the Local policy's short-circuits).
//   firewall-<h>-…: loadBalancerSourceRanges (`ip saddr != { … } drop`), via the firewall-ips map.
//   endpoint-<h>-…__ip/port: the hairpin mark (source = the endpoint itself), then dnat.
//   nat-postrouting (srcnat) → masquerading: masquerade what carries the mark (fully-random).
//   filter-input/forward/output (dstnat-10) → endpoints-check: the no-endpoint-services and
//       no-endpoint-nodeports maps reject (none anywhere) or drop (none local); filter-prerouting
//       and filter-output → firewall-check.
// Names as kube-proxy forms them: base32(sha256(name))[:8] + "-" + name, name being
// "ns/svc/proto/port" or "ns/svc/proto/port__ip/port" (IPv6 colons as dots), truncated at 240.
// Written as `nft -f` input (one transaction): declarations first (chains, maps, sets), then rules,
// then map elements — nft resolves a goto only to a chain declared earlier in the batch. Loaded by
// src/testbed/nft.ts inside a test's network namespace, never the machine's own.
import { createHash } from 'node:crypto';
import type { Backend, DesiredServicePort, DesiredState, IpFamily } from '../model/types.js';
import type { KubeProxyRulesOptions } from './kube-proxy-rules.js';
import { base32Std, cidrContains, hostPort, KUBE_MARK_MASQ_BIT, servicePortName } from './kube-proxy-rules.js';

export const NFT_TABLE = 'kube-proxy';

/** The nftables family of kube-proxy's table for an IP family (knftables.IPv4Family / IPv6Family). */
export const nftFamily = (family: IpFamily = 'IPv4') => (family === 'IPv6' ? 'ip6' : 'ip');

export interface KubeProxyNftOptions extends KubeProxyRulesOptions {
  /**
   * Start the transaction by deleting a `kube-proxy` table left by an earlier load (`add table` +
   * `delete table`, so it also works on a fresh namespace): the load replaces, in one transaction.
   * kube-proxy itself flushes and refills its chains and maps instead.
   */
  replace?: boolean;
  /**
   * Split the load into transactions of this many service ports. The kernel binds each rule's
   * anonymous verdict map (`numgen random mod N vmap { … }`, one per service chain) by walking the
   * transaction's list of new objects (__nft_set_trans_bind), so one transaction's cost grows with
   * the square of its services: on this machine's kernel, loaded by other work, 5,000 services took
   * 4.3 s, 7,500 26 s, 10,000 65–78 s (nearly all system time; 23 s in a quiet bench run). The
   * ruleset is the same however it is split (docs/benchmarks.md, "The nftables baseline").
   */
  transactionServices?: number;
}

export interface KubeProxyNftChains {
  service: string;
  local: string;
  external: string;
  firewall: string;
  /** The endpoint chains of the locally reachable endpoints, in the model's order. */
  endpoints: string[];
}

export interface KubeProxyNft {
  /** `nft -f` input, one transaction. */
  text: string;
  /** `add rule` statements, and map elements (service-ips, service-nodeports, no-endpoint-*, firewall-ips). */
  rules: number;
  elements: number;
  /** Chain names by service port key (what a test reads). */
  chains: Map<string, KubeProxyNftChains>;
  /**
   * The same ruleset as `text`, as consecutive `nft -f` transactions of at most
   * `opts.transactionServices` service ports each (the first also holds the table and its base
   * chains and maps): see KubeProxyNftOptions.transactionServices. One element when unset.
   */
  transactions: string[];
}

/** knftables.NameLengthMax (256) less the longest prefix ("affinity-", up to 16). */
const CHAIN_BASE_MAX = 256 - 16;

/** kube-proxy's hashAndTruncate: an 8-character hash of `name`, a dash, `name`, at most 240 long. */
export function hashAndTruncate(name: string): string {
  const out = `${base32Std(createHash('sha256').update(name).digest()).slice(0, 8)}-${name}`;
  return out.length > CHAIN_BASE_MAX ? `${out.slice(0, CHAIN_BASE_MAX - 3)}...` : out;
}

type PortId = Pick<DesiredServicePort, 'namespace' | 'name' | 'portName' | 'protocol'>;

/** servicePortChainNameBase: `HASH-ns/svc/proto/port` (the port name, '' when unnamed). */
export const nftServiceChainBase = (sp: PortId) => hashAndTruncate(`${sp.namespace}/${sp.name}/${sp.protocol.toLowerCase()}/${sp.portName}`);

/** servicePortEndpointChainNameBase: `HASH-ns/svc/proto/port__ip/port`. */
export const nftEndpointChainBase = (sp: PortId, ip: string, port: number) =>
  hashAndTruncate(`${sp.namespace}/${sp.name}/${sp.protocol.toLowerCase()}/${sp.portName}__${ip.replaceAll(':', '.')}/${port}`);

const quote = (s: string) => `"${s.replaceAll('"', '\'')}"`;

class Transaction {
  readonly decls: string[] = [];
  readonly rules: string[] = [];
  readonly elements: string[] = [];
  private readonly chains = new Set<string>();
  /** `ip kube-proxy` or `ip6 kube-proxy`. */
  readonly table: string;

  constructor(readonly family: IpFamily) {
    this.table = `${nftFamily(family)} ${NFT_TABLE}`;
  }

  /** The address match keyword (kube-proxy's ipX) and the address type (ipvX_addr). */
  get ipX(): string {
    return nftFamily(this.family);
  }

  get addrType(): string {
    return this.family === 'IPv6' ? 'ipv6_addr' : 'ipv4_addr';
  }

  chain(name: string, spec?: string): string {
    if (!this.chains.has(name)) {
      this.chains.add(name);
      this.decls.push(`add chain ${this.table} ${name}${spec ? ` { ${spec} ; }` : ''}`);
    }
    return name;
  }

  declare(what: 'map' | 'set', name: string, spec: string): void {
    this.decls.push(`add ${what} ${this.table} ${name} { ${spec} ; }`);
  }

  rule(chain: string, rule: string, comment?: string): void {
    this.rules.push(`add rule ${this.table} ${chain} ${rule}${comment ? ` comment ${quote(comment)}` : ''}`);
  }

  element(map: string, key: string, verdict: string, comment?: string): void {
    this.elements.push(`add element ${this.table} ${map} { ${key}${comment ? ` comment ${quote(comment)}` : ''} : ${verdict} }`);
  }
}

const MAP_TYPE_PORT = 'type inet_proto . inet_service : verdict';
const MARK_MASQ = 'mark-for-masquerade';
const REJECT_CHAIN = 'reject-chain';

/** setupNFTables: the base chains, the jump chains, the dispatch and no-endpoint maps. */
function skeleton(tx: Transaction, mark: string): void {
  const { ipX } = tx;
  const mapTypeIp = `type ${tx.addrType} . inet_proto . inet_service : verdict`;
  const noLocalhost = tx.family === 'IPv6' ? 'ip6 daddr != ::1' : 'ip daddr != 127.0.0.0/8';
  for (const [name, type, hook, priority] of [
    // Filter chains see the pre-DNAT destination: they run just before DNAT.
    ['filter-prerouting', 'filter', 'prerouting', -110], ['filter-input', 'filter', 'input', -110],
    ['filter-forward', 'filter', 'forward', -110], ['filter-output', 'filter', 'output', -110],
    ['nat-prerouting', 'nat', 'prerouting', -100], ['nat-output', 'nat', 'output', -100], ['nat-postrouting', 'nat', 'postrouting', 100],
  ] as const) tx.chain(name, `type ${type} hook ${hook} priority ${priority}`);
  for (const c of ['endpoints-check', 'firewall-check', 'services', 'masquerading', MARK_MASQ]) tx.chain(c);
  tx.chain(REJECT_CHAIN, `comment ${quote('helper for @no-endpoint-services / @no-endpoint-nodeports')}`);
  // `reject` is valid only from input, forward and output: endpoints-check is jumped to from those.
  for (const c of ['filter-input', 'filter-forward', 'filter-output']) tx.rule(c, 'ct state new jump endpoints-check');
  for (const c of ['filter-prerouting', 'filter-output']) tx.rule(c, 'ct state new jump firewall-check');
  tx.rule('nat-output', 'jump services');
  tx.rule('nat-prerouting', 'jump services');
  tx.rule('nat-postrouting', 'jump masquerading');
  tx.rule(MARK_MASQ, `mark set mark or ${mark}`);
  tx.rule('masquerading', `mark and ${mark} == 0 return`);
  tx.rule('masquerading', `mark set mark xor ${mark}`);
  tx.rule('masquerading', 'masquerade fully-random');

  tx.declare('map', 'no-endpoint-services', `${mapTypeIp} ; comment ${quote('vmap to drop or reject packets to services with no endpoints')}`);
  tx.declare('map', 'no-endpoint-nodeports', `${MAP_TYPE_PORT} ; comment ${quote('vmap to drop or reject packets to service nodeports with no endpoints')}`);
  tx.rule(REJECT_CHAIN, 'reject');
  tx.rule('endpoints-check', `${ipX} daddr . meta l4proto . th dport vmap @no-endpoint-services`);
  tx.rule('endpoints-check', `fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @no-endpoint-nodeports`);
  tx.declare('map', 'firewall-ips', `${mapTypeIp} ; comment ${quote('destinations that are subject to LoadBalancerSourceRanges')}`);
  tx.rule('firewall-check', `${ipX} daddr . meta l4proto . th dport vmap @firewall-ips`);
  tx.declare('map', 'service-ips', `${mapTypeIp} ; comment ${quote('ClusterIP, ExternalIP and LoadBalancer IP traffic')}`);
  tx.declare('map', 'service-nodeports', `${MAP_TYPE_PORT} ; comment ${quote('NodePort traffic')}`);
  tx.rule('services', `${ipX} daddr . meta l4proto . th dport vmap @service-ips`);
  tx.rule('services', `fib daddr type local ${noLocalhost} meta l4proto . th dport vmap @service-nodeports`);
}

/** The ruleset kube-proxy (nftables mode) writes for `state`'s service ports of `opts.family` (default IPv4). */
export function kubeProxyNftRules(state: DesiredState, opts: KubeProxyNftOptions = {}): KubeProxyNft {
  const family = opts.family ?? 'IPv4';
  const tx = new Transaction(family);
  const { ipX } = tx;
  const mark = `0x${KUBE_MARK_MASQ_BIT.toString(16)}`;
  const chains: KubeProxyNft['chains'] = new Map();
  skeleton(tx, mark);
  /** Where each transaction starts in decls, rules and elements (the first: 0, after the skeleton's). */
  const cuts: { decls: number; rules: number; elements: number }[] = [{ decls: 0, rules: 0, elements: 0 }];
  const perTransaction = opts.transactionServices ?? Infinity;
  let inTransaction = 0;

  for (const sp of state.services.values()) {
    if (sp.family !== family) continue;
    if (inTransaction++ === perTransaction) {
      cuts.push({ decls: tx.decls.length, rules: tx.rules.length, elements: tx.elements.length });
      inTransaction = 1;
    }
    const spn = servicePortName(sp);
    const proto = sp.protocol.toLowerCase();
    const base = nftServiceChainBase(sp);
    const names: KubeProxyNftChains = { service: `service-${base}`, local: `local-${base}`, external: `external-${base}`, firewall: `firewall-${base}`, endpoints: [] };
    chains.set(sp.key, names);
    const cluster = sp.clusterBackends.toArray();
    const local = sp.localBackends.toArray();
    const of = (kind: string) => sp.frontends.filter((f) => f.kind === kind);
    const externallyAccessible = sp.frontends.some((f) => f.kind !== 'ClusterIP');

    // The policies (kube-proxy's CategorizeEndpoints and the chains it decides to use). The
    // Cluster chain also serves an externally accessible Local service: its short-circuits.
    const hasEndpoints = cluster.length > 0;
    const usesCluster = hasEndpoints && (!sp.internalLocal || externallyAccessible);
    const usesLocal = local.length > 0 && (sp.internalLocal || sp.externalLocal);
    const hasInternal = sp.internalLocal ? local.length > 0 : hasEndpoints;
    const hasExternal = sp.externalLocal ? local.length > 0 : hasEndpoints;
    const internalChain = sp.internalLocal ? names.local : names.service;
    const externalPolicyChain = sp.externalLocal ? names.local : names.service;
    const usesExternal = hasEndpoints && externallyAccessible;
    const noEndpointVerdict = (has: boolean) => (!hasEndpoints ? `goto ${REJECT_CHAIN}` : has ? undefined : 'drop');
    const internalVerdict = noEndpointVerdict(hasInternal);
    const externalVerdict = noEndpointVerdict(hasExternal);

    // Endpoint chains, for every endpoint a used policy chain reaches (each once).
    const reachable = new Map<string, { b: Backend; base: string }>();
    for (const b of [...(usesCluster ? cluster : []), ...(usesLocal ? local : [])]) {
      const ep = `${b.ip}:${b.port}`;
      if (!reachable.has(ep)) reachable.set(ep, { b, base: nftEndpointChainBase(sp, b.ip, b.port) });
    }
    for (const { base: eb } of reachable.values()) names.endpoints.push(tx.chain(`endpoint-${eb}`));
    if (usesCluster) tx.chain(names.service);
    if (usesLocal) tx.chain(names.local);
    if (usesExternal) tx.chain(names.external);

    const key = (ip: string, port: number) => `${ip} . ${proto} . ${port}`;
    for (const f of of('ClusterIP')) {
      if (hasInternal) tx.element('service-ips', key(f.ip, f.port), `goto ${internalChain}`);
      else tx.element('no-endpoint-services', key(f.ip, f.port), internalVerdict as string, spn);
    }
    for (const f of of('ExternalIP')) {
      if (hasEndpoints) tx.element('service-ips', key(f.ip, f.port), `goto ${names.external}`);
      if (externalVerdict) tx.element('no-endpoint-services', key(f.ip, f.port), externalVerdict, spn);
    }
    const lbs = of('LoadBalancer');
    const usesFirewall = lbs.length > 0 && sp.loadBalancerSourceRanges.length > 0;
    if (usesFirewall) {
      tx.chain(names.firewall);
      // A range holding the node's own address admits the node reaching a VIP it holds (source = the VIP).
      const fromNode = opts.nodeIp !== undefined && sp.loadBalancerSourceRanges.some((r) => cidrContains(r, opts.nodeIp as string));
      const sources = [...sp.loadBalancerSourceRanges, ...(fromNode ? lbs.map((f) => f.ip) : [])];
      tx.rule(names.firewall, `${ipX} saddr != { ${sources.join(' , ')} } drop`);
    }
    for (const f of lbs) {
      if (hasEndpoints) tx.element('service-ips', key(f.ip, f.port), `goto ${names.external}`);
      if (usesFirewall) tx.element('firewall-ips', key(f.ip, f.port), `goto ${names.firewall}`, spn);
    }
    if (externalVerdict) for (const f of lbs) tx.element('no-endpoint-services', key(f.ip, f.port), externalVerdict, spn);
    for (const port of [...new Set(of('NodePort').map((f) => f.port))]) {
      if (hasEndpoints) tx.element('service-nodeports', `${proto} . ${port}`, `goto ${names.external}`);
      if (externalVerdict) tx.element('no-endpoint-nodeports', `${proto} . ${port}`, externalVerdict, spn);
    }

    // Internal traffic: masquerade what comes from outside the cluster (a route to the service
    // range via this node can bounce it to another node).
    if (hasInternal) {
      for (const f of of('ClusterIP')) {
        const dst = `${ipX} daddr ${f.ip} ${proto} dport ${f.port}`;
        if (opts.masqueradeAll) tx.rule(internalChain, `${dst} jump ${MARK_MASQ}`);
        else if (opts.clusterCidr) tx.rule(internalChain, `${dst} ${ipX} saddr != ${opts.clusterCidr} jump ${MARK_MASQ}`);
      }
    }
    if (usesExternal) {
      if (!sp.externalLocal) {
        tx.rule(names.external, `jump ${MARK_MASQ}`);
      } else {
        if (opts.clusterCidr) tx.rule(names.external, `${ipX} saddr ${opts.clusterCidr} goto ${names.service}`, 'short-circuit pod traffic');
        tx.rule(names.external, `fib saddr type local jump ${MARK_MASQ}`, 'masquerade local traffic');
        tx.rule(names.external, `fib saddr type local goto ${names.service}`, 'short-circuit local traffic');
      }
      if (hasExternal) tx.rule(names.external, `goto ${externalPolicyChain}`);
    }
    if (sp.affinityTimeoutSec > 0) {
      for (const { base: eb } of reachable.values()) tx.declare('set', `affinity-${eb}`, `type ${tx.addrType} ; flags dynamic,timeout ; timeout ${sp.affinityTimeoutSec}s`);
    }
    const split = (chain: string, set: Backend[]) => {
      const eps = set.map((b) => reachable.get(`${b.ip}:${b.port}`)?.base as string);
      if (sp.affinityTimeoutSec > 0) for (const eb of eps) tx.rule(chain, `${ipX} saddr @affinity-${eb} goto endpoint-${eb}`);
      tx.rule(chain, `numgen random mod ${eps.length} vmap { ${eps.map((eb, i) => `${i} : goto endpoint-${eb}`).join(' , ')} }`);
    };
    if (usesCluster) split(names.service, cluster);
    if (usesLocal) split(names.local, local);
    for (const { b, base: eb } of reachable.values()) {
      const chain = `endpoint-${eb}`;
      // Hairpin: an endpoint reaching its own service is masqueraded, or it would answer itself.
      tx.rule(chain, `${ipX} saddr ${b.ip} jump ${MARK_MASQ}`);
      if (sp.affinityTimeoutSec > 0) tx.rule(chain, `update @affinity-${eb} { ${ipX} saddr }`);
      tx.rule(chain, `meta l4proto ${proto} dnat to ${hostPort(b.ip, b.port)}`);
    }
  }

  const head = [
    ...(opts.replace ? [`add table ${tx.table}`, `delete table ${tx.table}`] : []),
    `add table ${tx.table} { comment ${quote('rules for kube-proxy')} ; }`,
  ];
  const text = [...head, ...tx.decls, ...tx.rules, ...tx.elements, ''].join('\n');
  const transactions = cuts.map((from, i) => {
    const to = cuts[i + 1] ?? { decls: tx.decls.length, rules: tx.rules.length, elements: tx.elements.length };
    return [...(i === 0 ? head : []), ...tx.decls.slice(from.decls, to.decls), ...tx.rules.slice(from.rules, to.rules),
      ...tx.elements.slice(from.elements, to.elements), ''].join('\n');
  });
  return { text, rules: tx.rules.length, elements: tx.elements.length, chains, transactions };
}
