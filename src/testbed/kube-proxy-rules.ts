// The rules kube-proxy's iptables mode writes, generated from the same desired state Sluice
// programs (src/model: Service + EndpointSlice objects → service ports with their frontends and
// endpoint sets), for the test bed and the benchmarks: kube-proxy running beside Sluice (AKS),
// kube-proxy parity of external traffic, and the kube-proxy baseline of `npm run bench`.
//
// Laid out as pkg/proxy/iptables does (recent releases), one service port at a time:
//   nat    PREROUTING/OUTPUT → KUBE-SERVICES: per ClusterIP → KUBE-SVC-<h> (internalTrafficPolicy
//          Local: KUBE-SVL-<h>); per external IP and LoadBalancer IP → KUBE-EXT-<h> (with
//          loadBalancerSourceRanges: KUBE-FW-<h> first); last, dst-type LOCAL → KUBE-NODEPORTS:
//          per NodePort → KUBE-EXT-<h>.
//          KUBE-SVC-<h>: the masquerade mark for traffic from outside the cluster CIDR, then one
//          rule per endpoint, `-m statistic --mode random --probability 1/(n-i)` (none on the
//          last) → KUBE-SEP-<e>: the hairpin mark (source = the endpoint itself), then DNAT.
//          KUBE-EXT-<h> (whenever the service has endpoints anywhere): mark for masquerade →
//          KUBE-SVC-<h> (externalTrafficPolicy Cluster), or pod and node traffic short-circuited
//          to KUBE-SVC-<h> and the rest → KUBE-SVL-<h> (only when there is a local endpoint;
//          else it falls through untranslated to the filter table's DROP).
//          KUBE-FW-<h>: listed sources → KUBE-EXT-<h>; the rest fall through to
//          KUBE-PROXY-FIREWALL's DROP.
//          POSTROUTING → KUBE-POSTROUTING: MASQUERADE what carries the mark.
//   filter KUBE-SERVICES rejects ClusterIPs without endpoints; KUBE-EXTERNAL-SERVICES rejects
//          the external frontends of services without endpoints (drops them when only local
//          endpoints are missing under externalTrafficPolicy Local); KUBE-PROXY-FIREWALL drops
//          what a source range refused; KUBE-FORWARD accepts marked and established traffic;
//          KUBE-NODEPORTS accepts healthCheckNodePorts.
// Chain names are kube-proxy's: base32(sha256("ns/name:port" + protocol)) [first 16], and for
// an endpoint base32(sha256("ns/name:port" + protocol + "ip:port")) [first 16] ("[ip]:port" in IPv6).
// One IP family per ruleset, as kube-proxy runs one proxier per family: `family: 'IPv6'` gives the
// ip6tables-restore input for the IPv6 service ports — the same chains and rules with /128 host
// masks, bracketed DNAT targets, and `! -d ::1/128` on the KUBE-NODEPORTS jump (IPv6 has no
// localhost NodePorts); clusterCidr and nodeIp are then the IPv6 ones.
// Applied with iptables-restore (ip6tables-restore) --noflush inside a network namespace the test
// made, never the machine's own.
import { createHash } from 'node:crypto';
import { cidrContains as parsedCidrContains, parseCidr, parseIp } from '../model/ip.js';
import type { Backend, DesiredServicePort, DesiredState, IpFamily } from '../model/types.js';

export const KUBE_MARK_MASQ_BIT = 0x4000;

export interface KubeProxyRulesOptions {
  /** The IP family of the ruleset (kube-proxy's proxier per family); default IPv4. */
  family?: IpFamily;
  /** The cluster's pod CIDR (kube-proxy's --cluster-cidr): traffic from outside it is masqueraded. */
  clusterCidr?: string;
  /** kube-proxy's --masquerade-all. */
  masqueradeAll?: boolean;
  /**
   * The node's own address (kube-proxy's nodeIP): a loadBalancerSourceRanges entry containing it
   * also admits traffic whose source is the LoadBalancer IP (the node reaching a VIP it holds).
   */
  nodeIp?: string;
}

export interface KubeProxyRules {
  /** iptables-restore input for the nat table (`*nat` … `COMMIT`). */
  nat: string;
  /** iptables-restore input for the filter table. */
  filter: string;
  /** Both, ready for one iptables-restore --noflush. */
  text: string;
  /** Rule counts (the -A lines) per table. */
  rules: { nat: number; filter: number };
  /** Chain names by service port key: what a test reads counters of. */
  chains: Map<string, { svc: string; ext: string; svl: string; fw: string; seps: string[] }>;
}

const RFC4648 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Go's base32.StdEncoding of `buf` (with '=' padding, which the 16-char prefixes never reach). */
export function base32Std(buf: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += RFC4648[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += RFC4648[(value << (5 - bits)) & 31];
  while (out.length % 8 !== 0) out += '=';
  return out;
}

const hash16 = (s: string) => base32Std(createHash('sha256').update(s).digest()).slice(0, 16);

/** kube-proxy's ServicePortName.String(): `ns/name:port`, or `ns/name` for an unnamed port. */
export const servicePortName = (sp: Pick<DesiredServicePort, 'namespace' | 'name' | 'portName'>) =>
  `${sp.namespace}/${sp.name}${sp.portName ? `:${sp.portName}` : ''}`;

/** The KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW- suffix of a service port. */
export const portProtoHash = (spn: string, protocol: string) => hash16(spn + protocol.toLowerCase());
/** The KUBE-SEP- chain of one endpoint (`ip:port`) of a service port. */
export const endpointChain = (spn: string, protocol: string, endpoint: string) => `KUBE-SEP-${hash16(spn + protocol.toLowerCase() + endpoint)}`;

/** kube-proxy's computeProbability: 1/n with ten decimals. */
export const probability = (n: number) => (1 / n).toFixed(10);

class Table {
  readonly chains: string[] = [];
  readonly rules: string[] = [];
  private readonly known = new Set<string>();

  constructor(readonly name: string, builtins: string[]) {
    for (const c of builtins) this.known.add(c);
  }

  has(name: string): boolean {
    return this.known.has(name);
  }

  chain(name: string): string {
    if (!this.known.has(name)) {
      this.known.add(name);
      this.chains.push(`:${name} - [0:0]`);
    }
    return name;
  }

  add(chain: string, ...args: string[]): void {
    this.rules.push(['-A', chain, ...args].join(' '));
  }

  text(): string {
    return [`*${this.name}`, ...this.chains, ...this.rules, 'COMMIT', ''].join('\n');
  }
}

/** Whether `cidr` contains `ip` (either family; false across families or when either does not parse). */
export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const a = parseIp(ip);
  return c !== null && a !== null && parsedCidrContains(c, a);
}

/** kube-proxy's endpoint string (net.JoinHostPort): `ip:port`, `[ip]:port` in IPv6. */
export const hostPort = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** A host's mask in `-s`/`-d`: /32, /128 in IPv6. */
const hostMask = (family: IpFamily) => (family === 'IPv6' ? '/128' : '/32');

const comment = (s: string) => ['-m', 'comment', '--comment', `"${s}"`];
const proto = (p: string) => ['-m', p.toLowerCase(), '-p', p.toLowerCase()];

/** The rules kube-proxy (iptables mode) writes for `state`'s service ports of `opts.family` (default IPv4). */
export function kubeProxyRules(state: DesiredState, opts: KubeProxyRulesOptions = {}): KubeProxyRules {
  const family = opts.family ?? 'IPv4';
  const host = (ip: string) => `${ip}${hostMask(family)}`;
  const nat = new Table('nat', ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  const filter = new Table('filter', ['INPUT', 'FORWARD', 'OUTPUT']);
  const chains: KubeProxyRules['chains'] = new Map();
  const MARK = `0x${KUBE_MARK_MASQ_BIT.toString(16)}`;

  // The fixed skeleton (kube-proxy's iptablesJumpChains and the chains it always writes).
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) nat.chain(c);
  nat.add('PREROUTING', ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES');
  nat.add('OUTPUT', ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES');
  nat.add('POSTROUTING', ...comment('kubernetes postrouting rules'), '-j', 'KUBE-POSTROUTING');
  nat.add('KUBE-POSTROUTING', '-m', 'mark', '!', '--mark', `${MARK}/${MARK}`, '-j', 'RETURN');
  nat.add('KUBE-POSTROUTING', '-j', 'MARK', '--xor-mark', MARK);
  nat.add('KUBE-POSTROUTING', ...comment('kubernetes service traffic requiring SNAT'), '-j', 'MASQUERADE', '--random-fully');
  nat.add('KUBE-MARK-MASQ', '-j', 'MARK', '--or-mark', MARK);
  for (const c of ['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-NODEPORTS', 'KUBE-FORWARD', 'KUBE-PROXY-FIREWALL']) filter.chain(c);
  for (const c of ['INPUT', 'FORWARD']) {
    filter.add(c, '-m', 'conntrack', '--ctstate', 'NEW', ...comment('kubernetes load balancer firewall'), '-j', 'KUBE-PROXY-FIREWALL');
    filter.add(c, '-m', 'conntrack', '--ctstate', 'NEW', ...comment('kubernetes externally-visible service portals'), '-j', 'KUBE-EXTERNAL-SERVICES');
  }
  filter.add('INPUT', ...comment('kubernetes health check service ports'), '-j', 'KUBE-NODEPORTS');
  filter.add('FORWARD', ...comment('kubernetes forwarding rules'), '-j', 'KUBE-FORWARD');
  filter.add('FORWARD', '-m', 'conntrack', '--ctstate', 'NEW', ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES');
  filter.add('OUTPUT', '-m', 'conntrack', '--ctstate', 'NEW', ...comment('kubernetes load balancer firewall'), '-j', 'KUBE-PROXY-FIREWALL');
  filter.add('OUTPUT', '-m', 'conntrack', '--ctstate', 'NEW', ...comment('kubernetes service portals'), '-j', 'KUBE-SERVICES');
  filter.add('KUBE-FORWARD', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
  filter.add('KUBE-FORWARD', ...comment('kubernetes forwarding rules'), '-m', 'mark', '--mark', `${MARK}/${MARK}`, '-j', 'ACCEPT');
  filter.add('KUBE-FORWARD', ...comment('kubernetes forwarding conntrack rule'), '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT');

  const nodePortRules: string[][] = [];
  const healthPorts = new Set<number>();
  for (const sp of state.services.values()) {
    if (sp.family !== family) continue;
    const spn = servicePortName(sp);
    const h = portProtoHash(spn, sp.protocol);
    const names = { svc: `KUBE-SVC-${h}`, ext: `KUBE-EXT-${h}`, svl: `KUBE-SVL-${h}`, fw: `KUBE-FW-${h}`, seps: [] as string[] };
    chains.set(sp.key, names);
    const p = proto(sp.protocol);
    const cluster = sp.clusterBackends.toArray();
    const local = sp.localBackends.toArray();
    const external = sp.frontends.filter((f) => f.kind !== 'ClusterIP');
    // kube-proxy's hasEndpoints / hasExternalEndpoints: the external frontends jump to KUBE-EXT
    // whenever the service has endpoints anywhere (its pod and node short-circuits still apply
    // under a Local policy); the filter table drops or rejects what the policy has no endpoint
    // for, and what KUBE-EXT did not translate reaches it.
    const hasEndpoints = cluster.length > 0;
    const hasExternalEndpoints = sp.externalLocal ? local.length > 0 : hasEndpoints;
    const externalChain = hasEndpoints && external.length > 0 ? names.ext : undefined;
    const externalFilter = hasExternalEndpoints ? undefined : hasEndpoints ? 'DROP' : 'REJECT';
    const externalFilterComment = `${spn} has no ${hasEndpoints ? 'local ' : ''}endpoints`;
    const internalSet = sp.internalLocal ? local : cluster;

    // Endpoint chains, shared by KUBE-SVC and KUBE-SVL.
    const sepOf = new Map<string, string>();
    for (const b of [...cluster, ...local]) {
      const ep = hostPort(b.ip, b.port);
      if (sepOf.has(ep)) continue;
      const sep = nat.chain(endpointChain(spn, sp.protocol, ep));
      sepOf.set(ep, sep);
      names.seps.push(sep);
      // Hairpin: an endpoint reaching its own service is masqueraded, or it would answer itself.
      nat.add(sep, ...comment(spn), '-s', host(b.ip), '-j', 'KUBE-MARK-MASQ');
      nat.add(sep, ...comment(spn), ...(sp.affinityTimeoutSec > 0 ? ['-m', 'recent', '--name', sep, '--set'] : []), ...p, '-j', 'DNAT', '--to-destination', ep);
    }
    const writeSplit = (chain: string, set: Backend[]) => {
      if (sp.affinityTimeoutSec > 0) {
        for (const b of set) {
          const ep = hostPort(b.ip, b.port);
          const sep = sepOf.get(ep) as string;
          nat.add(chain, ...comment(`${spn} -> ${ep}`), '-m', 'recent', '--name', sep, '--rcheck', '--seconds', String(sp.affinityTimeoutSec), '--reap', '-j', sep);
        }
      }
      set.forEach((b, i) => {
        const left = set.length - i;
        const ep = hostPort(b.ip, b.port);
        const split = left > 1 ? ['-m', 'statistic', '--mode', 'random', '--probability', probability(left)] : [];
        nat.add(chain, ...comment(`${spn} -> ${ep}`), ...split, '-j', sepOf.get(ep) as string);
      });
    };
    if (cluster.length > 0) {
      nat.chain(names.svc);
      for (const f of sp.frontends.filter((x) => x.kind === 'ClusterIP')) {
        const dst = [...p, '-d', host(f.ip), '--dport', String(f.port)];
        if (opts.masqueradeAll) nat.add(names.svc, ...comment(`${spn} cluster IP`), ...dst, '-j', 'KUBE-MARK-MASQ');
        else if (opts.clusterCidr) nat.add(names.svc, ...comment(`${spn} cluster IP`), ...dst, '!', '-s', opts.clusterCidr, '-j', 'KUBE-MARK-MASQ');
      }
      writeSplit(names.svc, cluster);
    }
    if (local.length > 0 && (sp.internalLocal || sp.externalLocal)) {
      nat.chain(names.svl);
      writeSplit(names.svl, local);
    }
    if (externalChain) {
      nat.chain(names.ext);
      if (sp.externalLocal) {
        if (opts.clusterCidr) nat.add(names.ext, ...comment(`pod traffic for ${spn} external destinations`), '-s', opts.clusterCidr, '-j', names.svc);
        nat.add(names.ext, ...comment(`masquerade LOCAL traffic for ${spn} external destinations`), '-m', 'addrtype', '--src-type', 'LOCAL', '-j', 'KUBE-MARK-MASQ');
        nat.add(names.ext, ...comment(`route LOCAL traffic for ${spn} external destinations`), '-m', 'addrtype', '--src-type', 'LOCAL', '-j', names.svc);
        if (hasExternalEndpoints) nat.add(names.ext, '-j', names.svl);
      } else {
        nat.add(names.ext, ...comment(`masquerade traffic for ${spn} external destinations`), '-j', 'KUBE-MARK-MASQ');
        nat.add(names.ext, '-j', names.svc);
      }
    }

    // Frontends: KUBE-SERVICES (nat) when the set they use has endpoints, else the filter
    // table's reject (none anywhere) or drop (no local one under a Local policy).
    const noneAnywhere = cluster.length === 0;
    for (const f of sp.frontends) {
      const dst = [...p, '-d', host(f.ip), '--dport', String(f.port)];
      if (f.kind === 'ClusterIP') {
        if (internalSet.length > 0) nat.add('KUBE-SERVICES', ...comment(`${spn} cluster IP`), ...dst, '-j', sp.internalLocal ? names.svl : names.svc);
        else if (noneAnywhere) filter.add('KUBE-SERVICES', ...comment(`${spn} has no endpoints`), ...dst, '-j', 'REJECT');
        else filter.add('KUBE-SERVICES', ...comment(`${spn} has no local endpoints`), ...dst, '-j', 'DROP');
        continue;
      }
      if (f.kind === 'NodePort') continue; // per port, below
      const label = f.kind === 'LoadBalancer' ? 'loadbalancer IP' : 'external IP';
      if (externalChain) {
        const ranges = f.kind === 'LoadBalancer' ? sp.loadBalancerSourceRanges : [];
        if (ranges.length > 0) {
          // KUBE-FW: listed sources go on to KUBE-EXT; the rest leave the chain untranslated and
          // meet KUBE-PROXY-FIREWALL's DROP in the filter table.
          if (!nat.has(names.fw)) {
            nat.chain(names.fw);
            for (const r of ranges) nat.add(names.fw, ...comment(`${spn} ${label}`), '-s', r, '-j', names.ext);
            if (opts.nodeIp && ranges.some((r) => cidrContains(r, opts.nodeIp as string))) {
              for (const lb of sp.frontends.filter((x) => x.kind === 'LoadBalancer')) nat.add(names.fw, ...comment(`${spn} ${label}`), '-s', host(lb.ip), '-j', names.ext);
            }
          }
          nat.add('KUBE-SERVICES', ...comment(`${spn} ${label}`), ...dst, '-j', names.fw);
          filter.add('KUBE-PROXY-FIREWALL', ...comment(`${spn} traffic not accepted by ${names.fw}`), ...dst, '-j', 'DROP');
        } else {
          nat.add('KUBE-SERVICES', ...comment(`${spn} ${label}`), ...dst, '-j', names.ext);
        }
      }
      if (externalFilter) filter.add('KUBE-EXTERNAL-SERVICES', ...comment(externalFilterComment), ...dst, '-j', externalFilter);
    }
    for (const port of [...new Set(external.filter((f) => f.kind === 'NodePort').map((f) => f.port))]) {
      const dport = [...p, '--dport', String(port)];
      if (externalChain) nodePortRules.push(['KUBE-NODEPORTS', ...comment(spn), ...dport, '-j', names.ext]);
      if (externalFilter) filter.add('KUBE-EXTERNAL-SERVICES', ...comment(externalFilterComment), '-m', 'addrtype', '--dst-type', 'LOCAL', ...dport, '-j', externalFilter);
    }
    // The healthCheckNodePort is served by kube-proxy itself: its filter rule only accepts it.
    if (sp.healthCheckNodePort > 0 && !healthPorts.has(sp.healthCheckNodePort)) {
      healthPorts.add(sp.healthCheckNodePort);
      filter.add('KUBE-NODEPORTS', ...comment(`${spn} health check node port`), '-m', 'tcp', '-p', 'tcp', '--dport', String(sp.healthCheckNodePort), '-j', 'ACCEPT');
    }
  }
  for (const [chain, ...args] of nodePortRules) nat.add(chain as string, ...args);
  // Localhost NodePorts never work in IPv6: kube-proxy keeps ::1 out of the jump.
  const notLocalhost = family === 'IPv6' ? ['!', '-d', '::1/128'] : [];
  nat.add('KUBE-SERVICES', ...comment('kubernetes service nodeports; NOTE: this must be the last rule in this chain'), '-m', 'addrtype', '--dst-type', 'LOCAL', ...notLocalhost, '-j', 'KUBE-NODEPORTS');

  const natText = nat.text();
  const filterText = filter.text();
  return { nat: natText, filter: filterText, text: filterText + natText, rules: { nat: nat.rules.length, filter: filter.rules.length }, chains };
}
