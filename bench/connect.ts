// Connect latency and rate through a Service, client pod → node → backend pod (issue 17):
// short TCP connections (connect, read the backend's one-line answer, close) on five paths —
// direct to the pod IP (the limit), kube-proxy's iptables rules, kube-proxy's nftables-mode table,
// Sluice's connect-time programs, Sluice's TC programs alone — at several service counts, in one run.
//
//   npm run bench -- --only connect [--quick] [--connect-services 1,1000,10000,30000,65000] [--connect-rounds 5]
//
// The bed is bench/connect-bed.ts (four nodes, one dataplane each). At each scale every
// dataplane is programmed, then:
//  - warm-up: `warmupConnections` on every path, not counted (the first connections of a path
//    pay for cold caches, ARP, the client's JIT); each must reach the right pod;
//  - rounds: every path measured once per round, the direct path twice (first and last: it is
//    the reference, and the noisiest to pin down), the other four in an order that rotates each
//    round so none always follows the same neighbour; per measurement `latencyConnections`
//    sequential connections (p50, p99 of that measurement) then `rateWorkers` loops opening
//    connections back to back for `rateSeconds` (conn/s);
//  - each figure is the median over the measurements of that path at that scale;
//  - IP families (issue 16): in a dual-stack bed (the default) every path is measured in IPv4 and
//    in IPv6 each round — one family's rotated order, then the other's, which family goes first
//    alternating by round — so the ratios against direct and kube-proxy are taken within a
//    family, and each row carries its family.
// Any failed or misrouted connection fails the bench. One client process per path, all Node.js,
// on the same CPUs as everything else: conn/s is the client's and the echo server's limit as much
// as the dataplane's, the same for every path.
import { loadavg } from 'node:os';
import type { IpFamily } from '../src/model/types.js';
import type { ConnectBed, ConnectPath, ConnectProgramming } from './connect-bed.js';
import { CONNECT_FAMILIES, CONNECT_PATHS, createConnectBed } from './connect-bed.js';
import type { CpuAwakeMethod } from './cpu-awake.js';
import { createCpuAwake, describeCpuAwake } from './cpu-awake.js';
import { benchIptablesBackend } from './service-objects.js';
import { distribution } from './stats.js';

export interface ConnectOptions {
  services: number[];
  rounds: number;
  latencyConnections: number;
  rateSeconds: number;
  rateWorkers: number;
  warmupConnections: number;
  /** IP families measured: IPv4, and IPv6 in a dual-stack bed (default both). */
  families?: IpFamily[];
  /**
   * Keep the CPUs out of idle while measuring (bench/cpu-awake.ts: one SCHED_IDLE busy-loop per
   * CPU, every path alike; default true). Off, a quiet VM's p50s are bimodal by chance.
   */
  cpuAwake?: boolean;
  /**
   * The largest scale at which kube-proxy's nftables baseline is loaded and measured (default: every
   * scale). Its `nft -f` grows faster than linearly (minutes at 30k, an hour or more at 65k in
   * both families); above this the path has no row and its node keeps the last table loaded.
   */
  nftMaxServices?: number;
  progress?: (line: string) => void;
  /** Runs after a scale's rounds, with the bed at that scale (bench/agent-start.ts). */
  afterScale?: (bed: ConnectBed, services: number) => Promise<void>;
}

export interface ConnectSample { p50: number; p99: number; connPerSec: number; failures: number; misrouted: number; connections: number; failureCodes: Record<string, number> }

export interface ConnectRow {
  path: ConnectPath;
  /** The family of the addresses connected to (absent in results from before issue 16: IPv4). */
  family: IpFamily;
  services: number;
  /** Medians over the path's measurements at this scale (ms, conn/s). */
  latencyP50Ms: number;
  latencyP99Ms: number;
  connPerSec: number;
  /** Connections timed over all measurements (latency and rate). */
  connections: number;
  failures: number;
  misrouted: number;
  /** What the failed connections failed with (errno names; the rate loops' first ten per measurement): what to look at when `failures` is not 0. */
  failureCodes?: Record<string, number>;
  perMeasurement: { p50: number; p99: number; connPerSec: number }[];
}


/** The machine's load around a scale's rounds (1-minute load average; absent in older results). */
export interface ScaleLoad { services: number; loadavg1Before: number; loadavg1After: number }

export interface ConnectResult {
  bench: 'connect';
  options: Omit<ConnectOptions, 'progress' | 'afterScale'>;
  iptablesBackend: string;
  /** How the CPUs were kept out of idle while measuring (absent in results from before: none). */
  cpuAwake?: CpuAwakeMethod;
  load?: ScaleLoad[];
  programming: ConnectProgramming[];
  rows: ConnectRow[];
  /** What of the bed was left after its cleanup (namespaces, cgroup, pins): must be empty. */
  leftovers: string[];
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => distribution(xs).p50;

async function measure(bed: ConnectBed, path: ConnectPath, family: IpFamily, o: ConnectOptions): Promise<ConnectSample> {
  const p = bed.path(path, family);
  const attempts = await p.client.tcp(p.target, o.latencyConnections);
  const ok = attempts.filter((a) => a.ok);
  const d = distribution(ok.map((a) => a.ms));
  await p.client.startLoop('rate', p.target, { proto: 'tcp', workers: o.rateWorkers, gapMs: 0 });
  await pause(o.rateSeconds * 1000);
  const loop = await p.client.stopLoop('rate');
  const failureCodes: Record<string, number> = {};
  for (const a of [...attempts.filter((x) => !x.ok), ...loop.failSamples]) failureCodes[a.code ?? 'unknown'] = (failureCodes[a.code ?? 'unknown'] ?? 0) + 1;
  return {
    failureCodes,
    p50: d.p50, p99: d.p99, connPerSec: (loop.attempts - loop.failures) / o.rateSeconds,
    failures: attempts.length - ok.length + loop.failures, connections: attempts.length + loop.attempts,
    misrouted: ok.filter((a) => a.backend !== p.backend).length + Object.entries(loop.backends).filter(([b]) => b !== p.backend).reduce((n, [, v]) => n + v, 0),
  };
}

async function warmUp(bed: ConnectBed, o: ConnectOptions, services: number, paths: readonly ConnectPath[]): Promise<void> {
  for (const family of bed.families) {
    for (const path of paths) {
      const p = bed.path(path, family);
      const attempts = await p.client.tcp(p.target, o.warmupConnections);
      const bad = attempts.filter((a) => !a.ok || a.backend !== p.backend);
      if (bad.length > 0) {
        throw new Error(`connect bench: ${path} (${family}, ${p.target.host}) at ${services} services: ${bad.length}/${attempts.length} warm-up connections failed or misrouted ` +
          `(${bad.slice(0, 3).map((a) => a.code ?? `answered by ${a.backend}`).join(', ')})`);
      }
    }
  }
}

/** The order of round `r` over `paths`: direct first and last, the others rotated by r. */
export function roundOrder(r: number, paths: readonly ConnectPath[] = CONNECT_PATHS): ConnectPath[] {
  const others = paths.filter((p) => p !== 'direct');
  const k = r % others.length;
  return ['direct', ...others.slice(k), ...others.slice(0, k), 'direct'];
}

/** The families of round `r` in their order: alternating which goes first. */
export function familyOrder(families: readonly IpFamily[], r: number): IpFamily[] {
  return r % 2 === 0 ? [...families] : [...families].reverse();
}

/** The paths measured at a scale: kube-proxy's nftables baseline only up to `nftMaxServices`. */
export function pathsAt(services: number, o: Pick<ConnectOptions, 'nftMaxServices'>): ConnectPath[] {
  return CONNECT_PATHS.filter((p) => p !== 'kube-proxy-nft' || services <= (o.nftMaxServices ?? Infinity));
}

const load1 = () => Number((loadavg()[0] ?? 0).toFixed(2));

/** Runs the connect bench (needs root and a built tree). */
export async function runConnectBench(o: ConnectOptions): Promise<ConnectResult> {
  const say = o.progress ?? (() => undefined);
  const backend = benchIptablesBackend();
  const rows: ConnectRow[] = [];
  const programming: ConnectProgramming[] = [];
  const families = o.families ?? [...CONNECT_FAMILIES];
  const bed = await createConnectBed(backend, families, Math.max(...o.services));
  let leftovers: string[] = [];
  let awakeLeftovers: () => string[] = () => [];
  let cpuAwake: CpuAwakeMethod | undefined;
  const load: ScaleLoad[] = [];
  try {
    const awake = await createCpuAwake(bed.run, o.cpuAwake ?? true);
    awakeLeftovers = awake.leftovers;
    cpuAwake = awake.method;
    say(describeCpuAwake(awake.method));
    for (const services of [...o.services].sort((a, b) => a - b)) {
      const paths = pathsAt(services, o);
      const prog = await bed.apply(services, { nft: paths.includes('kube-proxy-nft') });
      programming.push(prog);
      const v6 = prog.ipv6;
      say(`${services} services: kube-proxy restore ${(prog.kubeProxyRestoreMs / 1000).toFixed(1)} s (${prog.kubeProxyNatRules} nat rules), ` +
        (paths.includes('kube-proxy-nft') ? `kube-proxy nft -f ${(prog.kubeProxyNftLoadMs / 1000).toFixed(1)} s (${prog.kubeProxyNftRules} rules, ${prog.kubeProxyNftElements} map elements)`
          : 'kube-proxy nftables not loaded (above --connect-nft-max-services)') +
        (v6 ? `, IPv6: ip6tables restore ${(v6.kubeProxyRestoreMs / 1000).toFixed(1)} s (${v6.kubeProxyNatRules} nat rules)` +
          (paths.includes('kube-proxy-nft') ? `, nft -f ip6 ${(v6.kubeProxyNftLoadMs / 1000).toFixed(1)} s` : '') : '') +
        `, sluice programmed ${(prog.sluiceProgrammedMs / 1000).toFixed(1)} s (${families.join(' + ')})`);
      const samples = new Map<string, ConnectSample[]>();
      const key = (family: IpFamily, path: ConnectPath) => `${family}/${path}`;
      // Spinners from the warm-up to the last round, every path alike; released in any case.
      const loadBefore = load1();
      await awake.hold();
      try {
        await warmUp(bed, o, services, paths);
        for (let r = 0; r < o.rounds; r++) {
          for (const family of familyOrder(families, r)) {
            for (const path of roundOrder(r, paths)) samples.set(key(family, path), [...(samples.get(key(family, path)) ?? []), await measure(bed, path, family, o)]);
          }
          say(`${services} services: round ${r + 1}/${o.rounds} done (load average ${load1()})`);
        }
      } finally {
        await awake.release();
      }
      load.push({ services, loadavg1Before: loadBefore, loadavg1After: load1() });
      for (const [family, path] of families.flatMap((f) => paths.map((p) => [f, p] as const))) {
        const s = samples.get(key(family, path)) ?? [];
        rows.push({
          path, family, services,
          latencyP50Ms: median(s.map((x) => x.p50)), latencyP99Ms: median(s.map((x) => x.p99)), connPerSec: median(s.map((x) => x.connPerSec)),
          connections: s.reduce((n, x) => n + x.connections, 0), failures: s.reduce((n, x) => n + x.failures, 0), misrouted: s.reduce((n, x) => n + x.misrouted, 0),
          failureCodes: s.reduce<Record<string, number>>((acc, x) => {
            for (const [c, n] of Object.entries(x.failureCodes)) acc[c] = (acc[c] ?? 0) + n;
            return acc;
          }, {}),
          perMeasurement: s.map(({ p50, p99, connPerSec }) => ({ p50, p99, connPerSec })),
        });
      }
      if (o.afterScale) await o.afterScale(bed, services);
    }
  } finally {
    await bed.destroy();
    leftovers = [...bed.leftovers(), ...awakeLeftovers()];
  }
  const { progress: _progress, afterScale: _afterScale, ...options } = o;
  return { bench: 'connect', options: { ...options, families }, iptablesBackend: backend, ...(cpuAwake ? { cpuAwake } : {}), load, programming, rows, leftovers };
}

/** A row's family (results from before issue 16 have none: they are IPv4). */
export const rowFamily = (row: Pick<ConnectRow, 'family'>): IpFamily => row.family ?? 'IPv4';

const findRow = (rows: readonly ConnectRow[], services: number, path: ConnectPath, family: IpFamily) =>
  rows.find((r) => r.services === services && r.path === path && rowFamily(r) === family);

/** p50 of `path` over p50 of `base` at the same scale, in one family (NaN when either is missing). */
export function ratio(rows: readonly ConnectRow[], services: number, path: ConnectPath, base: ConnectPath,
  field: 'latencyP50Ms' | 'latencyP99Ms' | 'connPerSec' = 'latencyP50Ms', family: IpFamily = 'IPv4'): number {
  const a = findRow(rows, services, path, family);
  const b = findRow(rows, services, base, family);
  return a && b ? a[field] / b[field] : NaN;
}

/** A path's p50 in round r (direct: the mean of its two measurements of that round). */
function roundP50(row: ConnectRow, r: number): number {
  if (row.path !== 'direct') return row.perMeasurement[r]?.p50 ?? NaN;
  const a = row.perMeasurement[2 * r]?.p50 ?? NaN;
  const b = row.perMeasurement[2 * r + 1]?.p50 ?? NaN;
  return (a + b) / 2;
}

/**
 * The paired ratio: per round, `path`'s p50 over `base`'s p50 of the same round, then the median
 * over rounds. The machine's load drifts over minutes (a path's p50 swings 10× between rounds);
 * paths measured within one round meet about the same load, so their ratio is steadier than the
 * ratio of medians.
 */
export function pairedRatio(rows: readonly ConnectRow[], services: number, path: ConnectPath, base: ConnectPath, family: IpFamily = 'IPv4'): number {
  return pairedRows(findRow(rows, services, path, family), findRow(rows, services, base, family));
}

/**
 * The same path's IPv6 p50 over its IPv4 p50, paired by round (both families are measured in
 * every round, one after the other): what IPv6 costs on that path.
 */
export function familyPairedRatio(rows: readonly ConnectRow[], services: number, path: ConnectPath): number {
  return pairedRows(findRow(rows, services, path, 'IPv6'), findRow(rows, services, path, 'IPv4'));
}

function pairedRows(a: ConnectRow | undefined, b: ConnectRow | undefined): number {
  if (!a || !b) return NaN;
  const rounds = a.path === 'direct' ? a.perMeasurement.length / 2 : a.perMeasurement.length;
  return distribution(Array.from({ length: rounds }, (_, r) => roundP50(a, r) / roundP50(b, r)).filter(Number.isFinite)).p50;
}

/** The lowest per-round p50 of a path: its figure in the quietest round. */
export function bestRoundP50(row: ConnectRow): number {
  const rounds = row.path === 'direct' ? row.perMeasurement.length / 2 : row.perMeasurement.length;
  return Math.min(...Array.from({ length: rounds }, (_, r) => roundP50(row, r)));
}

export function formatConnect(r: ConnectResult): string {
  const o = r.options;
  const head = `${'services'.padStart(8)}  ${'family'.padEnd(6)} ${'path'.padEnd(14)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'conn/s'.padStart(7)} ${'p50/direct'.padStart(10)} ${'p50/kube-proxy'.padStart(14)} ${'paired/direct'.padStart(13)} ${'paired/kp'.padStart(9)} ${'failed'.padStart(6)}`;
  return [
    `client pod → node → backend pod, short TCP connections; medians of ${o.rounds} interleaved rounds (direct twice a round); ` +
      `${o.latencyConnections} sequential connections for latency, ${o.rateWorkers} workers × ${o.rateSeconds} s for rate; iptables-${r.iptablesBackend}`,
    r.cpuAwake ? describeCpuAwake(r.cpuAwake) : 'CPUs left to idle',
    ...(r.load ?? []).map((l) => `${l.services} services: load average ${l.loadavg1Before} before the rounds, ${l.loadavg1After} after`),
    head,
    ...r.rows.map((x) => {
      const f = rowFamily(x);
      return [String(x.services).padStart(8), ` ${f.padEnd(6)}`, x.path.padEnd(14), x.latencyP50Ms.toFixed(3).padStart(7), x.latencyP99Ms.toFixed(3).padStart(7),
        x.connPerSec.toFixed(0).padStart(7), `${ratio(r.rows, x.services, x.path, 'direct', 'latencyP50Ms', f).toFixed(2)}×`.padStart(10),
        `${ratio(r.rows, x.services, x.path, 'kube-proxy', 'latencyP50Ms', f).toFixed(2)}×`.padStart(14), `${pairedRatio(r.rows, x.services, x.path, 'direct', f).toFixed(2)}×`.padStart(13),
        `${pairedRatio(r.rows, x.services, x.path, 'kube-proxy', f).toFixed(2)}×`.padStart(9), String(x.failures + x.misrouted).padStart(6)].join(' ');
    }),
  ].join('\n');
}
