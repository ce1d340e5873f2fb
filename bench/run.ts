// Every bench, one after the other, then a summary against the goals of issues #3 and #4:
//
//   npm run bench                         # full scale (10k Services × 10 endpoints; TC at 1..100k)
//   npm run bench -- --quick              # small scale, a minute or so
//   npm run bench -- --only control-plane --services 20000 --endpoints 5
//
// Benches (never in parallel with each other: they would share the CPUs they time):
//  - control-plane: bench/control-plane.ts (cold start, endpoint change latency, RSS, restart,
//    and iptables-restore of the same size in the same run);
//  - agent:         bench/agent-scale.ts (the real sluice-agent process against the fake API
//    server at the same scale: process start → programmed, change → programmed, its RSS);
//  - tc-datapath:   bench/tc-datapath.ts (ns/packet of the TC programs against a no-op program,
//    IPv4 and IPv6); a full run regenerates its part of docs/benchmarks.md (bench/tc-report.ts);
//  - iptables:      iptables-restore of kube-proxy-shaped rulesets at smaller sizes too, to show
//    how it grows (bench/iptables-restore.ts);
//  - flows:         bench/flow-cleanup.ts (removing a backend beside a full conntrack table);
//  - nodeport:      bench/nodeport.ts (NodePort connection latency and conn/s from an external
//    client, backend on the node and on another, Sluice against kube-proxy-shaped iptables).
//  - maglev:        bench/maglev.ts (Maglev table build time, flows moved by a backend change at
//    100 and 1,000 backends, kernel memory per table).
//  - connect:       bench/connect.ts (connect latency and conn/s, client pod → node → backend
//    pod: direct, kube-proxy iptables, kube-proxy nftables, Sluice connect-time, Sluice TC only,
//    at 1 to 65k services)
//    bench/throughput.ts (iperf3 Gbit/s and CPU s/GB per path at 10k) and bench/agent-start.ts
//    (time to settle and CPU of an agent start at 10k, 30k and 65k); a full
//    run regenerates its part of docs/benchmarks.md and the charts (bench/report.ts).
//  - external-throughput: bench/external-throughput.ts (iperf3 Gbit/s and machine CPU s/GB,
//    external client → NodePort → pod on another node in SNAT, Tunnel and DSR modes against the
//    client → pod directly); a full run regenerates its part of docs/benchmarks.md and its chart
//    (bench/external-report.ts).
// Each writes .bench-results/<name>.json; the summary goes to .bench-results/summary.json.
import { release } from 'node:os';
import { loadNative } from '../src/bpf/native.js';
import { parseBenchOptions, UsageError, USAGE } from './args.js';
import type { BenchOptions } from './args.js';
import type { ControlPlaneResult } from './control-plane.js';
import { checkSanity, formatControlPlane, judgedRss, runControlPlaneBench } from './control-plane.js';
import type { AgentScaleResult } from './agent-scale.js';
import { formatAgentScale, measureAgentScale } from './agent-scale.js';
import { formatFlowCleanup, measureFlowCleanup } from './flow-cleanup.js';
import { formatMaglev, measureMaglevMap, measureMaglevTables } from './maglev.js';
import type { IptablesResult } from './iptables-restore.js';
import { measureIptablesRestore } from './iptables-restore.js';
import type { AgentStartResult } from './agent-start.js';
import { formatAgentStart, measureAgentStart } from './agent-start.js';
import type { ConnectResult } from './connect.js';
import { formatConnect, ratio, runConnectBench } from './connect.js';
import type { NodePortResult } from './nodeport.js';
import { writeConnectDocs } from './report.js';
import type { ThroughputRow } from './throughput.js';
import { formatThroughput, measureThroughput } from './throughput.js';
import { formatNodePort, runNodePortBench } from './nodeport.js';
import type { ExternalThroughputResult } from './external-throughput.js';
import { formatExternalThroughput, runExternalThroughputBench } from './external-throughput.js';
import { externalSanity, writeExternalDocs } from './external-report.js';
import { benchEnvironment, ms, writeResult } from './stats.js';
import type { TcBenchRow } from './tc-datapath.js';
import { formatTable, runTcDatapathBench, TC_FAMILIES } from './tc-datapath.js';
import { writeTcDocs } from './tc-report.js';

interface Outcome {
  name: string;
  ok: boolean;
  seconds: number;
  error?: string;
}

function header(title: string): void {
  console.log(`\n=== ${title} ${'='.repeat(Math.max(0, 70 - title.length))}`);
}

async function timed(name: string, outcomes: Outcome[], fn: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  try {
    await fn();
    outcomes.push({ name, ok: true, seconds: (performance.now() - t0) / 1000 });
  } catch (err) {
    console.error(`${name} failed:`, err);
    outcomes.push({ name, ok: false, seconds: (performance.now() - t0) / 1000, error: (err as Error).message });
  }
}

async function runIptablesSeries(o: BenchOptions, full: IptablesResult | null): Promise<IptablesResult[]> {
  const rows: IptablesResult[] = [];
  for (const services of [...new Set(o.iptablesServices)].sort((a, b) => a - b)) {
    if (full && services === full.services) continue;
    rows.push(await measureIptablesRestore(services, o.endpoints));
  }
  if (full) rows.push({ services: full.services, endpoints: full.endpoints, rules: full.rules, restoreMs: full.restoreMs });
  else if (!o.iptablesServices.includes(o.services)) rows.push(await measureIptablesRestore(o.services, o.endpoints));
  return rows.sort((a, b) => a.services - b.services);
}

function formatIptables(rows: IptablesResult[]): string {
  const binary = process.env['SLUICE_IPTABLES_RESTORE'] ?? 'iptables-legacy-restore';
  return [
    `${binary} of a kube-proxy-shaped nat table, one full restore into a fresh namespace`,
    `${'services'.padStart(9)} ${'endpoints'.padStart(9)} ${'rules'.padStart(8)} ${'restore'.padStart(11)} ${'µs/rule'.padStart(8)}`,
    ...rows.map((r) => [String(r.services).padStart(9), String(r.endpoints).padStart(9), String(r.rules).padStart(8), ms(r.restoreMs, 0).padStart(11),
      (r.restoreMs * 1000 / r.rules).toFixed(1).padStart(8)].join(' ')),
  ].join('\n');
}

function summary(cp: ControlPlaneResult | undefined, agent: AgentScaleResult | undefined, tc: TcBenchRow[] | undefined, ipt: IptablesResult[] | undefined,
  np: NodePortResult | undefined, connect: ConnectResult | undefined, outcomes: Outcome[]): string {
  const lines: string[] = [];
  const goal = (label: string, value: string, target: string, met: boolean) =>
    lines.push(`${label.padEnd(44)}${value.padStart(12)}   goal ${target.padEnd(10)} ${met ? 'met' : 'MISSED'}`);
  if (cp) {
    const s = `${cp.scale.services}×${cp.scale.endpointsPerService}`;
    goal(`cold start → programmed (${s})`, ms(cp.coldStart.totalMs, 0), `< ${cp.goals.coldStartMs} ms`, cp.met.coldStart);
    goal('endpoint change → maps p99', ms(cp.changes.latencyMs.p99), `< ${cp.goals.changeP99Ms} ms`, cp.met.changeP99);
    lines.push(`${'endpoint change → maps p50'.padEnd(44)}${ms(cp.changes.latencyMs.p50).padStart(12)}`);
    const rss = judgedRss(cp.memory);
    goal('agent RSS (cold start / changes, released)', `${(rss / 1048576).toFixed(0)} MB`, `< ${cp.goals.rssMb} MB`, cp.met.rss);
    if (cp.iptables) lines.push(`${`iptables-restore, same size (${cp.iptables.rules} rules)`.padEnd(44)}${ms(cp.iptables.restoreMs, 0).padStart(12)}`);
  }
  if (agent) {
    const s = `${agent.scale.services}×${agent.scale.endpointsPerService}`;
    lines.push(`${`agent process start → programmed (${s})`.padEnd(44)}${ms(agent.startToProgrammedMs, 0).padStart(12)}`);
    lines.push(`${'agent: change → programmed p50 / p99'.padEnd(44)}${`${agent.changes.latencyMs.p50.toFixed(1)} / ${agent.changes.latencyMs.p99.toFixed(1)} ms`.padStart(12)}`);
    lines.push(`${'agent RSS programmed/released/rest/peak'.padEnd(44)}${[agent.rss.programmed, agent.rss.afterRelease, agent.rss.atRest, agent.rss.peak].map((b) => (b / 1048576).toFixed(0)).join(' / ').padStart(12)} MB`);
  }
  if (tc) {
    const counts = [...new Set(tc.map((r) => r.services))];
    const lo = counts[0];
    const hi = counts[counts.length - 1];
    for (const family of TC_FAMILIES) {
      for (const scenario of ['ct-hit', 'new-flow'] as const) {
        const at = (n: number | undefined) => tc?.find((r) => (r.family ?? 'IPv4') === family && r.services === n && r.scenario === scenario);
        const a = at(lo);
        const b = at(hi);
        if (a && b) lines.push(`${`TC ${family} ${scenario} ns/pkt, ${lo} → ${hi} svcs`.padEnd(44)}${`${a.nsPerPacket.toFixed(0)} → ${b.nsPerPacket.toFixed(0)}`.padStart(12)}`);
      }
    }
  }
  if (ipt && ipt.length > 1) {
    const a = ipt[0] as IptablesResult;
    const b = ipt[ipt.length - 1] as IptablesResult;
    lines.push(`${`iptables-restore, ${a.services} → ${b.services} services`.padEnd(44)}${`${(a.restoreMs / 1000).toFixed(2)} → ${(b.restoreMs / 1000).toFixed(2)} s`.padStart(12)}`);
  }
  if (np) {
    for (const backend of ['local', 'remote'] as const) {
      const rows = np.rows.filter((r) => r.backend === backend);
      const hi = Math.max(...rows.map((r) => r.services));
      const at = (dp: string) => rows.find((r) => r.dataplane === dp && r.services === hi);
      const s = at('sluice');
      const k = at('kube-proxy');
      if (s && k) lines.push(`${`NodePort ${backend} p50, ${hi} svc: sluice/kube-proxy`.padEnd(44)}${`${s.latencyP50Ms.toFixed(2)} / ${k.latencyP50Ms.toFixed(2)} ms`.padStart(16)}`);
    }
  }
  if (connect) {
    const hi = Math.max(...connect.rows.map((r) => r.services));
    for (const family of connect.options.families ?? ['IPv4']) {
      for (const path of ['sluice-connect', 'sluice-tc', 'kube-proxy', 'kube-proxy-nft'] as const) {
        const x = ratio(connect.rows, hi, path, 'direct', 'latencyP50Ms', family);
        if (Number.isFinite(x)) lines.push(`${`connect p50 / direct, ${hi} svc, ${family}: ${path}`.padEnd(50)}${`${x.toFixed(2)}×`.padStart(12)}`);
      }
    }
  }
  for (const o of outcomes) lines.push(`${`${o.name}`.padEnd(44)}${`${o.seconds.toFixed(0)} s`.padStart(12)}   ${o.ok ? 'ok' : `FAILED: ${o.error ?? ''}`}`);
  return lines.join('\n');
}

export async function runAll(o: BenchOptions): Promise<boolean> {
  const environment = benchEnvironment();
  console.log(`sluice benches: ${o.only.join(', ')}${o.quick ? ' (quick)' : ''}; ${environment.cpus} CPUs (${environment.cpuModel}), ` +
    `load avg ${environment.loadavg1}, kernel ${environment.kernel}, node ${environment.node}`);
  if (environment.loadavg1 > environment.cpus) {
    console.log(`note: the machine is busy (load ${environment.loadavg1} on ${environment.cpus} CPUs): timings will be high and noisy`);
  }
  const outcomes: Outcome[] = [];
  let cp: ControlPlaneResult | undefined;
  let agent: AgentScaleResult | undefined;
  let tc: TcBenchRow[] | undefined;
  let ipt: IptablesResult[] | undefined;

  if (o.only.includes('control-plane')) {
    header(`control-plane: ${o.services} Services × ${o.endpoints} endpoints, ${o.changes} changes`);
    await timed('control-plane', outcomes, async () => {
      cp = await runControlPlaneBench({ services: o.services, endpoints: o.endpoints, changes: o.changes, inProcess: o.inProcess, iptables: !o.noIptables });
      console.log(formatControlPlane(cp));
      console.log(`wrote ${await writeResult('control-plane', cp)}`);
      checkSanity(cp);
    });
  }
  if (o.only.includes('agent')) {
    header(`agent: the sluice-agent process, ${o.services} Services × ${o.endpoints} endpoints, ${o.changes} changes`);
    await timed('agent', outcomes, async () => {
      agent = await measureAgentScale({ services: o.services, endpoints: o.endpoints, changes: o.changes, progress: (line) => console.log(line) });
      console.log(formatAgentScale(agent));
      console.log(`wrote ${await writeResult('agent', agent)}`);
    });
  }
  if (o.only.includes('tc-datapath')) {
    header(`tc-datapath: ${o.tcServices.join(', ')} services, repeat ${o.tcRepeat}`);
    await timed('tc-datapath', outcomes, async () => {
      tc = await runTcDatapathBench(o.tcRepeat, o.tcServices);
      console.log(formatTable(tc));
      // The same file bench/tc-datapath.ts writes when run alone.
      console.log(`wrote ${await writeResult('tc-datapath', {
        bench: 'tc-datapath', date: new Date().toISOString(), kernel: release(), repeat: o.tcRepeat, rounds: 5,
        cpus: loadNative().numPossibleCpus(), rows: tc,
      })}`);
      if (!o.quick) for (const f of await writeTcDocs({ environment, repeat: o.tcRepeat, rounds: 5, rows: tc })) console.log(`wrote ${f}`);
    });
  }
  if (o.only.includes('iptables')) {
    header(`iptables: kube-proxy-shaped rulesets, ${o.endpoints} endpoints per service`);
    await timed('iptables', outcomes, async () => {
      ipt = await runIptablesSeries(o, cp?.iptables ?? null);
      console.log(formatIptables(ipt));
      console.log(`wrote ${await writeResult('iptables', { bench: 'iptables', environment, binary: process.env['SLUICE_IPTABLES_RESTORE'] ?? 'iptables-legacy-restore', rows: ipt })}`);
    });
  }

  if (o.only.includes('flows')) {
    header('flows: removing a backend beside a full conntrack table');
    await timed('flows', outcomes, async () => {
      const rows = await measureFlowCleanup();
      console.log(formatFlowCleanup(rows));
      console.log(`wrote ${await writeResult('flows', { bench: 'flows', environment, rows })}`);
    });
  }

  let np: NodePortResult | undefined;
  if (o.only.includes('nodeport')) {
    header(`nodeport: external client → NodePort, Sluice vs kube-proxy iptables, ${o.nodeportServices.join(', ')} services`);
    await timed('nodeport', outcomes, async () => {
      np = await runNodePortBench({
        services: o.nodeportServices, rounds: o.nodeportRounds, latencyConnections: o.quick ? 100 : 200, rateSeconds: o.quick ? 1 : 2, rateWorkers: 4,
        progress: (line) => console.log(line),
      });
      console.log(formatNodePort(np));
      console.log(`wrote ${await writeResult('nodeport', { ...np, environment })}`);
      const bad = np.rows.filter((r) => r.failures + r.misrouted > 0);
      if (bad.length > 0) throw new Error(`failed or misrouted connections: ${bad.map((r) => `${r.dataplane}/${r.backend}/${r.services}: ${r.failures} failed, ${r.misrouted} misrouted`).join('; ')}`);
    });
  }

  if (o.only.includes('maglev')) {
    header('maglev: table build, flows moved by a backend change, memory per table');
    await timed('maglev', outcomes, async () => {
      const rows = measureMaglevTables();
      const map = await measureMaglevMap();
      console.log(formatMaglev(rows, map));
      console.log(`wrote ${await writeResult('maglev', { bench: 'maglev', environment, rows, map })}`);
    });
  }

  let connect: ConnectResult | undefined;
  if (o.only.includes('connect')) {
    header(`connect: client pod → node → backend pod, ${o.connectServices.join(', ')} services`);
    await timed('connect', outcomes, async () => {
      const starts: AgentStartResult[] = [];
      const startErrors: { services: number; error: string }[] = [];
      const throughput: ThroughputRow[] = [];
      connect = await runConnectBench({
        services: o.connectServices, rounds: o.connectRounds, families: o.connectFamilies, cpuAwake: o.cpuAwake,
        ...(o.connectNftMaxServices !== undefined ? { nftMaxServices: o.connectNftMaxServices } : {}), latencyConnections: o.quick ? 50 : 200, rateSeconds: o.quick ? 1 : 2, rateWorkers: 4,
        warmupConnections: o.quick ? 10 : 50, progress: (line) => console.log(line),
        afterScale: async (bed, services) => {
          if (o.throughputServices.includes(services)) {
            const rows = await measureThroughput(bed, { rounds: o.quick ? 1 : 3, seconds: o.quick ? 1 : 3 });
            throughput.push(...rows);
            console.log(formatThroughput(rows));
          }
          if (o.startServices.includes(services)) {
            // A start that fails (e.g. not programmed within its timeout) is a result to record, not
            // a reason to lose the scales' latency figures: noted, and the bench goes on.
            try {
              starts.push(await measureAgentStart(bed));
              console.log(formatAgentStart(starts.slice(-1)));
            } catch (err) {
              startErrors.push({ services, error: (err as Error).message.split('\n')[0] ?? String(err) });
              console.error(`agent starts at ${services} services failed: ${(err as Error).message}`);
            }
          }
        },
      });
      console.log(formatConnect(connect));
      if (throughput.length > 0) console.log(formatThroughput(throughput));
      if (starts.length > 0) console.log(formatAgentStart(starts));
      const report = { environment, connect, starts, throughput, ...(startErrors.length > 0 ? { startErrors } : {}) };
      console.log(`wrote ${await writeResult('connect', report)}`);
      const bad = connect.rows.filter((r) => r.failures + r.misrouted > 0);
      if (bad.length > 0) {
        throw new Error(`failed or misrouted connections: ${bad.map((r) => `${r.path}/${r.family}/${r.services}: ${r.failures} failed (${JSON.stringify(r.failureCodes ?? {})}), ${r.misrouted} misrouted`).join('; ')}`);
      }
      if (connect.leftovers.length > 0) throw new Error(`the bed left ${connect.leftovers.join(', ')}`);
      if (!o.quick) for (const f of await writeConnectDocs(report)) console.log(`wrote ${f}`);
      if (startErrors.length > 0) throw new Error(`agent starts failed: ${startErrors.map((e) => `${e.services}: ${e.error}`).join('; ')}`);
    });
  }

  let ext: ExternalThroughputResult | undefined;
  if (o.only.includes('external-throughput')) {
    header(`external-throughput: iperf3 external client → NodePort → pod on another node, ${o.externalRounds} rounds × ${o.externalSeconds} s`);
    await timed('external-throughput', outcomes, async () => {
      ext = await runExternalThroughputBench({ rounds: o.externalRounds, seconds: o.externalSeconds, progress: (line) => console.log(line) });
      console.log(formatExternalThroughput(ext));
      const report = { environment, result: ext };
      console.log(`wrote ${await writeResult('external-throughput', report)}`);
      const problems = externalSanity(ext);
      if (problems.length > 0) throw new Error(problems.join('; '));
      if (!o.quick) for (const f of await writeExternalDocs(report)) console.log(`wrote ${f}`);
    });
  }

  header('summary');
  console.log(summary(cp, agent, tc, ipt, np, connect, outcomes));
  const path = await writeResult('summary', {
    environment, options: o, outcomes,
    controlPlane: cp ? { coldStartMs: cp.coldStart.totalMs, changeP50Ms: cp.changes.latencyMs.p50, changeP99Ms: cp.changes.latencyMs.p99,
      rssAfterColdStartMb: cp.memory.afterColdStart.rss / 1048576, rssAfterChangesMb: cp.memory.afterChanges.rss / 1048576, rssAtRestMb: cp.memory.atRest.rss / 1048576,
      iptablesRestoreMs: cp.iptables?.restoreMs ?? null, goals: cp.goals, met: cp.met } : null,
    tcDatapath: tc ?? null,
    iptables: ipt ?? null,
    nodeport: np?.rows ?? null,
    connect: connect?.rows ?? null,
    externalThroughput: ext?.rows.map(({ perMeasurement: _p, ...row }) => row) ?? null,
  });
  console.log(`wrote ${path}`);
  // Missed goals are results, not failures; a bench that could not run is a failure.
  return outcomes.every((x) => x.ok);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  }
  if (options.help) {
    console.log(USAGE);
    process.exit(0);
  }
  runAll(options).then(
    (ok) => process.exit(ok ? 0 : 1),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
