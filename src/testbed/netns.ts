// Network namespaces, veth pairs, addresses, routes and sysctls, all by `ip` argv. Nothing here
// ever creates an interface, route or program in the root network namespace: veth pairs are
// created directly inside their namespaces (`ip -n NS link add ... peer ... netns PEER`).
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { run } from './exec.js';
import type { RunOptions, RunResult } from './exec.js';
import { assertIfname } from './names.js';

const NETNS_NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function assertNetns(ns: string): void {
  if (!NETNS_NAME_RE.test(ns) || ns === '.' || ns === '..') {
    throw new Error(`testbed: network namespace name "${ns}" is not a plain name`);
  }
}

/** Where iproute2 keeps named namespaces. */
export function netnsPath(ns: string): string {
  assertNetns(ns);
  return `/run/netns/${ns}`;
}

/** `ip -n NS args...` */
export function ipIn(ns: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
  assertNetns(ns);
  return run(['ip', '-n', ns, ...args], opts);
}

export async function listNetns(): Promise<string[]> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  // Lines look like `name (id: 3)` or just `name`.
  return stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}

/** Creates a namespace and brings its loopback up. */
export async function createNetns(ns: string): Promise<void> {
  assertNetns(ns);
  await run(['ip', 'netns', 'add', ns]);
  await ipIn(ns, ['link', 'set', 'dev', 'lo', 'up']);
  // No duplicate address detection for the interfaces made here later (their fe80:: addresses;
  // the test bed adds its own IPv6 addresses nodad): while an interface's link-local address is
  // tentative, 1-2 s after it comes up, the kernel sends no neighbour solicitation from it, so the
  // first packet towards a pod not yet resolved waits for a retransmission (a 1 s connect timed
  // out so in CI; a forwarded connect right after setup took 2 s, against 0 without DAD).
  await run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
}

/** Pids of processes whose network namespace is `ns`. */
export async function netnsPids(ns: string): Promise<number[]> {
  assertNetns(ns);
  const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((p) => Number.isInteger(p) && p > 0);
}

/**
 * Kills every process still inside `ns` (a namespace lives on while a process holds it) and
 * deletes it. Missing namespaces are fine: deletion is idempotent.
 */
export async function deleteNetns(ns: string): Promise<void> {
  assertNetns(ns);
  if (!(await listNetns()).includes(ns)) return;
  for (const pid of await netnsPids(ns)) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
  const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  if (r.code !== 0 && (await listNetns()).includes(ns)) {
    throw new Error(`testbed: cannot delete network namespace ${ns}: ${r.stderr.trim()}`);
  }
}

export interface VethSpec {
  ns: string;
  name: string;
  peerNs: string;
  peerName: string;
}

/** Creates a veth pair with one end in each namespace (both may be the same namespace). */
export async function addVethPair(spec: VethSpec): Promise<void> {
  assertIfname(spec.name);
  assertIfname(spec.peerName);
  assertNetns(spec.peerNs);
  await ipIn(spec.ns, ['link', 'add', 'name', spec.name, 'type', 'veth', 'peer', 'name', spec.peerName, 'netns', spec.peerNs]);
}

export async function linkUp(ns: string, ifname: string): Promise<void> {
  assertIfname(ifname);
  await ipIn(ns, ['link', 'set', 'dev', ifname, 'up']);
}

/** Adds an address in CIDR form, e.g. `10.244.0.2/32`. */
export async function addAddress(ns: string, ifname: string, cidr: string, opts: { nodad?: boolean } = {}): Promise<void> {
  assertIfname(ifname);
  // nodad: an IPv6 address usable at once, not "tentative" for the second duplicate detection takes.
  await ipIn(ns, ['addr', 'add', cidr, 'dev', ifname, ...(opts.nodad ? ['nodad'] : [])]);
}

export interface RouteSpec {
  /** `default` or a CIDR. */
  to: string;
  via?: string;
  dev?: string;
  src?: string;
  scope?: 'link' | 'host' | 'global';
  /** Gateway is reachable on dev without a covering prefix route. */
  onlink?: boolean;
}

export async function addRoute(ns: string, route: RouteSpec): Promise<void> {
  const args = ['route', 'add', route.to];
  if (route.via) args.push('via', route.via);
  if (route.dev) { assertIfname(route.dev); args.push('dev', route.dev); }
  if (route.src) args.push('src', route.src);
  if (route.scope) args.push('scope', route.scope);
  if (route.onlink) args.push('onlink');
  await ipIn(ns, args);
}

/** Sets a sysctl inside `ns`, e.g. setSysctl(ns, 'net.ipv4.ip_forward', '1'). */
export async function setSysctl(ns: string, key: string, value: string): Promise<void> {
  assertNetns(ns);
  if (!/^[a-z0-9_.-]+$/i.test(key)) throw new Error(`testbed: sysctl key "${key}" is not a dotted name`);
  await run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

export async function getSysctl(ns: string, key: string): Promise<string> {
  assertNetns(ns);
  return (await run(['ip', 'netns', 'exec', ns, 'sysctl', '-n', key])).stdout.trim();
}

/** The ifindex of `ifname` as seen inside `ns` (ifindexes are per namespace). */
export async function ifindexIn(ns: string, ifname: string): Promise<number> {
  assertIfname(ifname);
  const { stdout } = await ipIn(ns, ['-j', 'link', 'show', 'dev', ifname]);
  const parsed = JSON.parse(stdout) as { ifindex?: unknown }[];
  const ifindex = parsed[0]?.ifindex;
  if (typeof ifindex !== 'number') throw new Error(`testbed: no ifindex for ${ifname} in ${ns}: ${stdout}`);
  return ifindex;
}

/** An interface's packet and byte counters (its `ip -s link` statistics). */
export interface LinkCounters {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

/** The counters of `ifname` inside `ns`: what the interface received and sent so far. */
export async function linkCounters(ns: string, ifname: string): Promise<LinkCounters> {
  assertIfname(ifname);
  const { stdout } = await ipIn(ns, ['-j', '-s', 'link', 'show', 'dev', ifname]);
  type Stats = { bytes?: unknown; packets?: unknown };
  const s = (JSON.parse(stdout) as { stats64?: { rx?: Stats; tx?: Stats } }[])[0]?.stats64;
  const num = (v: unknown) => {
    if (typeof v !== 'number') throw new Error(`testbed: no counters for ${ifname} in ${ns}: ${stdout}`);
    return v;
  };
  return { rxBytes: num(s?.rx?.bytes), txBytes: num(s?.tx?.bytes), rxPackets: num(s?.rx?.packets), txPackets: num(s?.tx?.packets) };
}

/** Scratch mount point used (only inside the child's private mount namespace) by netnsArgv. */
const SYSFS_SWAP_DIR = '/run/sluice-testbed/sysfs-swap';

// Runs in the child after it entered the target netns and a private (slave) mount namespace:
// mounts a fresh sysfs, so /sys/class/net shows the namespace's own interfaces (as
// `ip netns exec` does), but moves the existing bpffs, cgroup and tracing mounts onto it, which
// `ip netns exec` would hide: children must see the same pins and cgroups as we do.
const ENTER_SCRIPT = `set -e
swap=$1; shift
mount --rbind /sys "$swap"
umount -l /sys
mount -t sysfs sysfs /sys
for m in fs/bpf fs/cgroup kernel/tracing kernel/debug; do
  if [ -d "/sys/$m" ] && mountpoint -q "$swap/$m"; then mount --move "$swap/$m" "/sys/$m"; fi
done
umount -l "$swap"
exec "$@"`;

/**
 * The argv that runs `argv` inside network namespace `ns`, like `ip netns exec`, except that
 * /sys/fs/bpf and the cgroup mounts stay visible (see ENTER_SCRIPT). All steps exec, so the
 * spawned pid is the command's pid.
 */
export function netnsArgv(ns: string, argv: readonly string[]): string[] {
  if (argv.length === 0) throw new Error('testbed: netnsArgv needs a command');
  mkdirSync(SYSFS_SWAP_DIR, { recursive: true });
  return [
    'nsenter', `--net=${netnsPath(ns)}`, '--',
    'unshare', '--mount', '--propagation', 'slave', '--',
    'sh', '-c', ENTER_SCRIPT, 'sh', SYSFS_SWAP_DIR, ...argv,
  ];
}

/**
 * The argv that runs `argv` in `ns`'s network namespace only (no mount namespace: netfilter tools
 * need no bpffs). The namespace must be named: nothing run this way reaches the machine's own.
 */
export function netOnlyArgv(ns: string, argv: readonly string[]): string[] {
  if (!ns) throw new Error(`testbed: ${argv[0] ?? 'a command'} needs a test network namespace`);
  return ['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv];
}

/**
 * Feeds `text` to `argv`'s stdin inside `ns`'s network namespace (a ruleset loader: iptables-restore,
 * nft -f). Resolves with the time it took (ms); rejects with `what`, the namespace and stderr.
 */
export function loadInNetns(ns: string, argv: readonly string[], text: string, what: string): Promise<number> {
  const [file, ...args] = netOnlyArgv(ns, argv);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file as string, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0
      ? resolve(performance.now() - t0)
      : reject(new Error(`${what} in ${ns} exited ${code}: ${stderr.slice(0, 800)}`))));
    child.stdin.end(text);
  });
}

/** Runs a command to completion inside `ns`. */
export function runInNetns(ns: string, argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
  return run(netnsArgv(ns, argv), opts);
}

/** Starts a long-running command inside `ns` (caller owns the ChildProcess). */
export function spawnInNetns(ns: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const [file, ...args] = netnsArgv(ns, argv);
  return spawn(file as string, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
