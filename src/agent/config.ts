// sluice-agent configuration: flags and SLUICE_* environment variables, validated into one typed
// object. A bad value is reported with the flag, the value and what would be accepted; the agent
// then exits non-zero before it touches the kernel.
import { statfsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { MAGLEV } from '../bpf/sluice-structs.js';
import { ipv6FromBuffer, ipv6ToBuffer } from '../bpf/ip-bytes.js';
import { maglevSizeProblem } from '../dataplane/maglev-table.js';
import type { MapSizeName } from '../dataplane/map-sizes.js';
import { MAP_SIZE_MAX, MAP_SIZE_OPTIONS, mapSizeEnv, mapSizeFlag } from '../dataplane/map-sizes.js';
import { parseCidr } from '../model/ip.js';

export type ConnectTimeMode = 'tcp' | 'tcp-udp' | 'disabled';
/** How external flows reach a backend on another node (docs/external-traffic.md, "Modes"). */
export type ExternalMode = 'SNAT' | 'Tunnel' | 'DSR';
export const EXTERNAL_MODES: readonly ExternalMode[] = ['SNAT', 'Tunnel', 'DSR'];
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface AgentConfig {
  command: 'run' | 'cleanup' | 'help' | 'version';
  nodeName: string;
  /** Path to a kubeconfig; '' = in-cluster or default lookup. */
  kubeconfig: string;
  /**
   * The API server's own address as a URL (https://HOST:PORT), used instead of the kubeconfig's or
   * the in-cluster KUBERNETES_SERVICE_HOST, a ClusterIP that only Sluice itself translates on a
   * node without kube-proxy ('' = no override).
   */
  k8sApiServer: string;
  /** Read objects from this directory instead of the API server ('' = use the API server). */
  manifestsDir: string;
  pinDir: string;
  /** cgroup v2 directory the connect-time programs attach to ('' = the cgroup2 mount root). */
  cgroupPath: string;
  /** Glob patterns of workload (pod) interfaces that get the TC programs. */
  interfacePatterns: string[];
  /** Glob patterns of host-facing interfaces that get the external-traffic programs ([] = none). */
  hostInterfacePatterns: string[];
  /** Source ports for SNATed external flows: outside ip_local_port_range (docs/external-traffic.md). */
  snatPortRange: { min: number; max: number };
  /** Slots of each external service's Maglev table, a prime (docs/external-traffic.md, "Maglev"). */
  maglevTableSize: number;
  /** External flows to a remote backend: Tunnel (the default), DSR, or SNAT (kube-proxy's). */
  externalMode: ExternalMode;
  /** DSR mode: client CIDRs (canonical IPv4 or IPv6) that get Tunnel instead (sl_dsr_optout4/6). */
  dsrOptoutCidrs: string[];
  /** UDP port of the node-to-node tunnel (Tunnel mode). */
  tunnelPort: number;
  /** MTU of the path between nodes: tunnelled SYNs get their MSS clamped to fit it. */
  tunnelMtu: number;
  connectTimeLb: ConnectTimeMode;
  logLevel: LogLevel;
  /** Coalescing window for bursts of changes. */
  minSyncPeriodMs: number;
  /** Full resync (re-read maps, re-apply everything) period. */
  fullResyncPeriodMs: number;
  adminSocket: string;
  /** host:port for /metrics, /healthz, /readyz; '' disables. */
  metricsAddress: string;
  /** CIDRs whose node addresses get NodePort frontends; empty = node IPs. */
  nodePortAddresses: string[];
  /** The IP families whose Services are proxied (docs/ipv6.md). */
  ipFamilies: Array<'IPv4' | 'IPv6'>;
  serviceProxyName: string;
  /** Conntrack timeouts in seconds (Calico defaults). */
  ctTimeouts: { tcpEstablished: number; tcpSynSent: number; tcpFin: number; udp: number };
  /** Where the compiled BPF objects are ('' = dist/bpf in the package). */
  bpfObjectDir: string;
  /** `cleanup`: how long flows Sluice tracks keep being translated after new ones went to kube-proxy. */
  cleanupDrainMs: number;
  /** --map-size-* flags set (src/dataplane/map-sizes.ts); the others keep the compiled capacities. */
  mapSizes: Partial<Record<MapSizeName, number>>;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

interface FlagSpec {
  /** Environment variable that sets the same value. */
  env?: string;
  help: string;
  parse(value: string, cfg: AgentConfig, flag: string): void;
}

function intIn(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new ConfigError(`${flag}: "${value}" is not a whole number from ${min} to ${max}`);
  }
  return n;
}

function durationMs(flag: string, value: string, minMs = 0): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(`${flag}: "${value}" is not a duration like 250ms, 10s, 5m or 1h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * unit;
  if (ms < minMs) throw new ConfigError(`${flag}: "${value}" is too short (at least ${minMs >= 1000 ? `${minMs / 1000}s` : `${minMs}ms`})`);
  return ms;
}

/** A Kubernetes label value (63 characters: alphanumerics, '-', '_', '.', alphanumeric at both ends). */
function labelValue(flag: string, value: string): string {
  if (value !== '' && !/^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(value)) {
    throw new ConfigError(`${flag}: "${value}" is not a Kubernetes label value (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)`);
  }
  return value;
}

/**
 * An IPv4 or IPv6 CIDR, read as the model reads it (parseCidr: host bits may be set), so a value
 * the agent starts with is never one the model would then ignore.
 */
function cidr(flag: string, value: string): string {
  if (parseCidr(value)) return value;
  const ip = value.split('/')[0] ?? '';
  const why = ip.includes('%')
    ? ': a zone index (%...) has no place in a CIDR'
    : /^::ffff:/i.test(ip) && isIP(ip) === 6
      ? ': an IPv4-mapped IPv6 address matches no node address; write the IPv4 CIDR'
      : '';
  throw new ConfigError(`${flag}: "${value}" is not a CIDR like 10.0.0.0/8 or fd00::/64${why}`);
}

/**
 * An IPv6 CIDR in canonical form (compressed text, no host bits set), or a ConfigError naming the
 * network it would mean.
 */
function ipv6Cidr(flag: string, raw: string): string {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(raw);
  if (!m || isIP(m[1]!) !== 6 || Number(m[2]) > 128) throw new ConfigError(`${flag}: "${raw}" is not an IPv6 CIDR like 2001:db8::/32`);
  const len = Number(m[2]);
  const addr = ipv6ToBuffer(m[1]!);
  const net = Buffer.from(addr);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    net[i] = (net[i] as number) & ((0xff00 >> bits) & 0xff);
  }
  const text = `${ipv6FromBuffer(net)}/${len}`;
  if (!net.equals(addr)) throw new ConfigError(`${flag}: "${raw}" has host bits set (the network is ${text})`);
  return text;
}

/**
 * A comma-separated list of IPv4 and IPv6 CIDRs, each in canonical form (no host bits set:
 * 10.1.2.3/8 is more likely a typo than a wish, so it is refused with the network it would mean).
 */
function ipCidrs(flag: string, value: string): string[] {
  const out: string[] = [];
  for (const raw of value.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (raw.includes(':')) {
      out.push(ipv6Cidr(flag, raw));
      continue;
    }
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(raw);
    if (!m || isIP(m[1]!) !== 4 || Number(m[2]) > 32) {
      throw new ConfigError(`${flag}: "${raw}" is not a CIDR like 203.0.113.0/24 or 2001:db8::/32`);
    }
    const len = Number(m[2]);
    const n = m[1]!.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
    const net = (n & mask) >>> 0;
    const text = [24, 16, 8, 0].map((s) => (net >>> s) & 255).join('.');
    if (net !== n) throw new ConfigError(`${flag}: "${raw}" has host bits set (the network is ${text}/${len})`);
    out.push(`${text}/${len}`);
  }
  return [...new Set(out)];
}

function absolutePath(flag: string, value: string): string {
  if (!value.startsWith('/')) throw new ConfigError(`${flag}: "${value}" is not an absolute path`);
  return value;
}

/**
 * An API server address: https://HOST[:PORT], http://HOST[:PORT] (test servers) or HOST[:PORT]
 * (https). HOST is a DNS name or an IP ([...] for IPv6); the port defaults to 443. Returns the URL
 * the client uses, without a trailing slash.
 */
export function apiServerUrl(flag: string, value: string): string {
  const bad = () => new ConfigError(`${flag}: "${value}" is not an API server address like https://HOST:PORT, HOST:PORT or HOST (e.g. the EKS cluster endpoint or the AKS FQDN)`);
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad();
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '' || url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) throw bad();
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!isIP(host) && !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) throw bad();
  return `${url.protocol}//${url.host}`;
}

function nonEmpty(flag: string, value: string): string {
  if (value.trim() === '') throw new ConfigError(`${flag}: must not be empty`);
  return value;
}

/** Comma-separated interface-name globs, each checked. */
function interfaceGlobs(flag: string, value: string): string[] {
  const patterns = value.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of patterns) {
    if (!/^[A-Za-z0-9_.*?-]{1,15}$/.test(p)) throw new ConfigError(`${flag}: "${p}" is not an interface name glob (letters, digits, - _ . * ?; at most 15 characters)`);
  }
  return patterns;
}

const FLAGS: Record<string, FlagSpec> = {
  '--node-name': { env: 'NODE_NAME', help: 'this node\'s name (default: hostname)', parse: (v, c, f) => void (c.nodeName = nonEmpty(f, v)) },
  '--kubeconfig': { env: 'KUBECONFIG', help: 'kubeconfig file (default: in-cluster, else ~/.kube/config)', parse: (v, c) => void (c.kubeconfig = v) },
  '--k8s-api-server': {
    env: 'SLUICE_K8S_API_SERVER',
    help: 'the API server\'s real address (https://HOST:PORT), not its ClusterIP: needed where nothing but Sluice translates ClusterIPs',
    parse: (v, c, f) => void (c.k8sApiServer = apiServerUrl(f, v)),
  },
  '--manifests': { env: 'SLUICE_MANIFESTS', help: 'read Services/EndpointSlices/Nodes from this directory instead of the API server', parse: (v, c, f) => void (c.manifestsDir = nonEmpty(f, v)) },
  '--pin-dir': { env: 'SLUICE_PIN_DIR', help: 'bpffs directory for pinned maps and links (default /sys/fs/bpf/sluice)', parse: (v, c, f) => void (c.pinDir = nonEmpty(f, v)) },
  '--cgroup': { env: 'SLUICE_CGROUP', help: 'cgroup v2 directory for connect-time load balancing (default: the cgroup2 root)', parse: (v, c, f) => void (c.cgroupPath = nonEmpty(f, v)) },
  '--interfaces': {
    env: 'SLUICE_INTERFACES',
    help: 'comma-separated globs of workload interfaces (default eni*,azv*,veth*,cali*,lxc*)',
    parse(v, c, f) {
      const patterns = interfaceGlobs(f, v);
      if (patterns.length === 0) throw new ConfigError(`${f}: needs at least one pattern`);
      c.interfacePatterns = patterns;
    },
  },
  '--host-interfaces': {
    env: 'SLUICE_HOST_INTERFACES',
    help: 'comma-separated globs of host-facing interfaces for NodePort/LoadBalancer/ExternalIP traffic (default eth*,ens*,enp*,eno*,bond*; "none" disables)',
    parse: (v, c, f) => void (c.hostInterfacePatterns = v === 'none' ? [] : interfaceGlobs(f, v)),
  },
  '--snat-port-range': {
    env: 'SLUICE_SNAT_PORT_RANGE',
    help: 'source ports of external flows SNATed to remote backends, MIN-MAX, outside net.ipv4.ip_local_port_range (default 61000-65535)',
    parse(v, c, f) {
      const m = /^(\d+)-(\d+)$/.exec(v);
      if (!m) throw new ConfigError(`${f}: "${v}" is not a port range MIN-MAX`);
      const min = intIn(f, m[1]!, 1024, 65535);
      const max = intIn(f, m[2]!, 1024, 65535);
      if (max < min) throw new ConfigError(`${f}: "${v}": MAX is below MIN`);
      c.snatPortRange = { min, max };
    },
  },
  '--maglev-table-size': {
    env: 'SLUICE_MAGLEV_TABLE_SIZE',
    help: `slots of each external service's Maglev table, a prime from ${MAGLEV.SIZE_MIN} to ${MAGLEV.SIZE_MAX} (default ${MAGLEV.SIZE_DEFAULT}; about 100 x the largest backend set balances within ~1%)`,
    parse(v, c, f) {
      const problem = /^\d+$/.test(v) ? maglevSizeProblem(Number(v)) : 'is not a whole number';
      if (problem) throw new ConfigError(`${f}: "${v}" ${problem}`);
      c.maglevTableSize = Number(v);
    },
  },
  '--external-mode': {
    env: 'SLUICE_EXTERNAL_MODE',
    help: 'external traffic to a backend on another node: Tunnel (default: the backend sees the client; UDP --tunnel-port between nodes), DSR (as Tunnel, and the backend\'s node answers the client directly) or SNAT (as kube-proxy: the backend sees this node)',
    parse(v, c, f) {
      if (!EXTERNAL_MODES.includes(v as ExternalMode)) throw new ConfigError(`${f}: "${v}" is not one of ${EXTERNAL_MODES.join(', ')}`);
      c.externalMode = v as ExternalMode;
    },
  },
  '--dsr-optout-cidrs': {
    env: 'SLUICE_DSR_OPTOUT_CIDRS',
    help: 'DSR mode: comma-separated IPv4 and IPv6 CIDRs of clients that get Tunnel instead (their network cannot take a reply from another node than the one they sent to)',
    parse: (v, c, f) => void (c.dsrOptoutCidrs = ipCidrs(f, v)),
  },
  '--tunnel-port': {
    env: 'SLUICE_TUNNEL_PORT',
    help: 'UDP port of the node-to-node tunnel in Tunnel mode; the same on every node, open between nodes (default 6080, GUE)',
    parse: (v, c, f) => void (c.tunnelPort = intIn(f, v, 1, 65535)),
  },
  '--tunnel-mtu': {
    env: 'SLUICE_TUNNEL_MTU',
    help: 'MTU of the network between nodes (e.g. 9001 on AWS); tunnelled TCP gets its MSS clamped to fit (default 1500)',
    parse: (v, c, f) => void (c.tunnelMtu = intIn(f, v, 576, 65535)),
  },
  '--connect-time-lb': {
    env: 'SLUICE_CONNECT_TIME_LB',
    help: 'connect-time load balancing: tcp, tcp-udp (default) or disabled',
    parse(v, c, f) {
      if (v !== 'tcp' && v !== 'tcp-udp' && v !== 'disabled') throw new ConfigError(`${f}: "${v}" is not one of tcp, tcp-udp, disabled`);
      c.connectTimeLb = v;
    },
  },
  '--log-level': {
    env: 'SLUICE_LOG_LEVEL',
    help: `log level: ${LOG_LEVELS.join(', ')} (default info)`,
    parse(v, c, f) {
      if (!LOG_LEVELS.includes(v as LogLevel)) throw new ConfigError(`${f}: "${v}" is not one of ${LOG_LEVELS.join(', ')}`);
      c.logLevel = v as LogLevel;
    },
  },
  '--min-sync-period': { env: 'SLUICE_MIN_SYNC_PERIOD', help: 'coalesce bursts of changes for this long (default 50ms)', parse: (v, c, f) => void (c.minSyncPeriodMs = durationMs(f, v)) },
  '--cleanup-drain': {
    env: 'SLUICE_CLEANUP_DRAIN',
    help: 'cleanup: keep translating tracked flows this long after new ones stop being translated, before detaching (default 5s)',
    parse: (v, c, f) => void (c.cleanupDrainMs = durationMs(f, v)),
  },
  '--full-resync-period': { env: 'SLUICE_FULL_RESYNC_PERIOD', help: 'full resync period (default 5m)', parse: (v, c, f) => void (c.fullResyncPeriodMs = durationMs(f, v, 1000)) },
  '--admin-socket': { env: 'SLUICE_ADMIN_SOCKET', help: 'admin Unix socket, an absolute path (default /run/sluice/admin.sock)', parse: (v, c, f) => void (c.adminSocket = absolutePath(f, v)) },
  '--metrics-address': {
    env: 'SLUICE_METRICS_ADDRESS',
    help: 'host:port for /metrics, /healthz, /readyz (default 127.0.0.1:9963; "off" disables)',
    parse(v, c, f) {
      if (v === 'off') return void (c.metricsAddress = '');
      const m = /^(.*):(\d+)$/.exec(v);
      if (!m || (m[1] !== '' && !isIP(m[1]!.replace(/^\[|\]$/g, '')))) throw new ConfigError(`${f}: "${v}" is not host:port with an IP host (or "off")`);
      intIn(f, m[2]!, 1, 65535);
      c.metricsAddress = v;
    },
  },
  '--node-port-addresses': {
    env: 'SLUICE_NODE_PORT_ADDRESSES',
    help: 'comma-separated CIDRs selecting node addresses for NodePorts (default: node IPs)',
    parse: (v, c, f) => void (c.nodePortAddresses = v.split(',').filter(Boolean).map((x) => cidr(f, x.trim()))),
  },
  '--ip-families': {
    env: 'SLUICE_IP_FAMILIES',
    help: 'comma-separated IP families to proxy: IPv4, IPv6 (default both; a family the cluster does not use costs nothing)',
    parse(v, c, f) {
      const families = [...new Set(v.split(',').map((x) => x.trim()).filter(Boolean))];
      const bad = families.find((x) => x !== 'IPv4' && x !== 'IPv6');
      if (bad !== undefined || families.length === 0) throw new ConfigError(`${f}: "${v}" is not a list of IPv4, IPv6`);
      c.ipFamilies = families as Array<'IPv4' | 'IPv6'>;
    },
  },
  '--service-proxy-name': { env: 'SLUICE_SERVICE_PROXY_NAME', help: 'serve only Services labelled service.kubernetes.io/service-proxy-name=NAME', parse: (v, c, f) => void (c.serviceProxyName = labelValue(f, v)) },
  '--ct-timeout-tcp-established': { help: 'conntrack timeout, established TCP (default 1h)', parse: (v, c, f) => void (c.ctTimeouts.tcpEstablished = durationMs(f, v, 1000) / 1000) },
  '--ct-timeout-tcp-syn': { help: 'conntrack timeout, TCP SYN sent (default 20s)', parse: (v, c, f) => void (c.ctTimeouts.tcpSynSent = durationMs(f, v, 1000) / 1000) },
  '--ct-timeout-tcp-fin': { help: 'conntrack timeout, TCP closing (default 30s)', parse: (v, c, f) => void (c.ctTimeouts.tcpFin = durationMs(f, v, 1000) / 1000) },
  '--ct-timeout-udp': { help: 'conntrack timeout, UDP (default 60s)', parse: (v, c, f) => void (c.ctTimeouts.udp = durationMs(f, v, 1000) / 1000) },
  '--bpf-dir': { env: 'SLUICE_BPF_DIR', help: 'directory of the compiled BPF objects (default: the package\'s dist/bpf)', parse: (v, c, f) => void (c.bpfObjectDir = nonEmpty(f, v)) },
  ...mapSizeFlags(),
};

/** --map-size-frontends, ...: one flag per MAP_SIZE_OPTIONS entry (docs/agent.md, "Map sizes"). */
function mapSizeFlags(): Record<string, FlagSpec> {
  const out: Record<string, FlagSpec> = {};
  for (const o of MAP_SIZE_OPTIONS) {
    out[mapSizeFlag(o.name)] = {
      env: mapSizeEnv(o.name),
      help: `capacity of ${o.maps.join(' and ')}: ${o.holds} (default ${o.defaultSize})`,
      parse: (v, c, f) => void (c.mapSizes[o.name] = intIn(f, v, o.min, MAP_SIZE_MAX)),
    };
  }
  return out;
}

/**
 * What no single flag can check: the Maglev chunk map must hold at least one external service's
 * table, or every external service would fail.
 */
function checkCombinations(cfg: AgentConfig): void {
  const chunks = cfg.mapSizes['maglev-chunks'];
  const perTable = Math.ceil(cfg.maglevTableSize / MAGLEV.CHUNK);
  if (chunks !== undefined && chunks < perTable) {
    throw new ConfigError(`${mapSizeFlag('maglev-chunks')}: "${chunks}" is below the ${perTable} chunks of one Maglev table (--maglev-table-size ${cfg.maglevTableSize}): no external service would fit`);
  }
}

export function defaultConfig(): AgentConfig {
  return {
    command: 'run',
    nodeName: hostname(),
    kubeconfig: '',
    k8sApiServer: '',
    manifestsDir: '',
    pinDir: '/sys/fs/bpf/sluice',
    cgroupPath: '',
    interfacePatterns: ['eni*', 'azv*', 'veth*', 'cali*', 'lxc*'],
    hostInterfacePatterns: ['eth*', 'ens*', 'enp*', 'eno*', 'bond*'],
    snatPortRange: { min: 61000, max: 65535 },
    maglevTableSize: MAGLEV.SIZE_DEFAULT,
    externalMode: 'Tunnel',
    dsrOptoutCidrs: [],
    tunnelPort: 6080,
    tunnelMtu: 1500,
    connectTimeLb: 'tcp-udp',
    logLevel: 'info',
    minSyncPeriodMs: 50,
    fullResyncPeriodMs: 5 * 60_000,
    adminSocket: '/run/sluice/admin.sock',
    metricsAddress: '127.0.0.1:9963',
    nodePortAddresses: [],
    ipFamilies: ['IPv4', 'IPv6'],
    serviceProxyName: '',
    ctTimeouts: { tcpEstablished: 3600, tcpSynSent: 20, tcpFin: 30, udp: 60 },
    bpfObjectDir: '',
    cleanupDrainMs: 5000,
    mapSizes: {},
  };
}

/**
 * Parses argv (without node and script) and the environment. Flags win over the environment.
 * Throws ConfigError naming the flag (or variable) and the value.
 */
export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const cfg = defaultConfig();
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const value = spec.env ? env[spec.env] : undefined;
    if (value === undefined || value === '') continue;
    try {
      spec.parse(value, cfg, flag);
    } catch (err) {
      throw new ConfigError(`environment ${spec.env}: ${(err as Error).message}`);
    }
  }
  const args = [...argv];
  if (args[0] === 'cleanup' || args[0] === 'run') cfg.command = args.shift() as 'cleanup' | 'run';
  while (args.length > 0) {
    const arg = args.shift()!;
    if (arg === '--help' || arg === '-h') return { ...cfg, command: 'help' };
    if (arg === '--version') return { ...cfg, command: 'version' };
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[flag];
    if (!spec) throw new ConfigError(`unknown ${arg.startsWith('-') ? 'flag' : 'argument'} "${arg}" (see --help)`);
    const value = eq > 0 ? arg.slice(eq + 1) : args.shift();
    if (value === undefined) throw new ConfigError(`${flag}: needs a value`);
    spec.parse(value, cfg, flag);
  }
  checkCombinations(cfg);
  return cfg;
}

export function usage(): string {
  const lines = [
    'Usage: sluice-agent [run] [flags]      program the node\'s service dataplane and keep it in sync',
    '       sluice-agent cleanup [flags]    detach every Sluice program and remove its pins',
    '',
    'Flags (each also settable by the environment variable shown):',
  ];
  for (const [flag, spec] of Object.entries(FLAGS)) {
    lines.push(`  ${flag.padEnd(30)} ${spec.help}${spec.env ? ` [$${spec.env}]` : ''}`);
  }
  lines.push('  --help, --version');
  return lines.join('\n');
}

/** statfs f_type of cgroup v2 (CGROUP2_SUPER_MAGIC). */
const CGROUP2_MAGIC = 0x63677270;

/** What checkConfigPaths asks of the filesystem (tests pass a fake). */
export interface PathProbe {
  kind(path: string): 'file' | 'directory' | 'other' | 'missing';
  isCgroup2(path: string): boolean;
}

const realProbe: PathProbe = {
  kind(path) {
    try {
      const st = statSync(path);
      return st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other';
    } catch {
      return 'missing';
    }
  },
  isCgroup2: (path) => statfsSync(path).type === CGROUP2_MAGIC,
};

/**
 * Checks the paths the flags name, for `run`, before anything is loaded, pinned or attached:
 * the cgroup (when connect-time load balancing is on), the kubeconfig (when the API server is
 * the source) and the BPF object directory. parseConfig stays free of I/O; the agent entry calls
 * both. Throws ConfigError naming the flag, its variable and the value.
 */
export function checkConfigPaths(cfg: AgentConfig, probe: PathProbe = realProbe): void {
  const named = (flag: string) => `${flag} ($${FLAGS[flag]?.env ?? ''})`;
  if (cfg.cgroupPath && cfg.connectTimeLb !== 'disabled') {
    const kind = probe.kind(cfg.cgroupPath);
    if (kind !== 'directory') throw new ConfigError(`${named('--cgroup')}: "${cfg.cgroupPath}" ${kind === 'missing' ? 'does not exist' : 'is not a directory'}`);
    if (!probe.isCgroup2(cfg.cgroupPath)) throw new ConfigError(`${named('--cgroup')}: "${cfg.cgroupPath}" is not a cgroup v2 directory`);
  }
  if (cfg.kubeconfig && !cfg.manifestsDir) {
    const kind = probe.kind(cfg.kubeconfig);
    if (kind !== 'file') throw new ConfigError(`${named('--kubeconfig')}: "${cfg.kubeconfig}" ${kind === 'missing' ? 'does not exist' : 'is not a file'}`);
  }
  if (cfg.manifestsDir && probe.kind(cfg.manifestsDir) !== 'directory') {
    throw new ConfigError(`${named('--manifests')}: "${cfg.manifestsDir}" ${probe.kind(cfg.manifestsDir) === 'missing' ? 'does not exist' : 'is not a directory'}`);
  }
  if (cfg.bpfObjectDir && probe.kind(cfg.bpfObjectDir) !== 'directory') {
    throw new ConfigError(`${named('--bpf-dir')}: "${cfg.bpfObjectDir}" is not a directory`);
  }
}
