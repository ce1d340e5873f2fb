// The control-plane bench at tiny scale, so the harness cannot rot: it runs, programs exactly what
// the synthetic cluster asks for, measures every number, and leaves no pins behind. Timing is NOT
// asserted here (targets are shown by `npm run bench` and docs/benchmarks.md, not unit tests).
// Under tap the child's RSS is inflated anyway: @tapjs/processinfo re-injects its loader into every
// child process's NODE_OPTIONS (result.runtime shows it).
import { existsSync, readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { parseBenchOptions } from '../../bench/args.js';
import { ClusterState, portsOf } from '../../bench/cluster.js';
import type { ControlPlaneMeasurement } from '../../bench/control-plane.js';
import { checkSanity, formatControlPlane, judgedRss, runControlPlaneBench } from '../../bench/control-plane.js';
import { distribution, percentile } from '../../bench/stats.js';
import type { AgentStartResult } from '../../bench/agent-start.js';
import { measureAgentStart } from '../../bench/agent-start.js';
import { CONNECT_FAMILIES, CONNECT_PATHS } from '../../bench/connect-bed.js';
import { familyOrder, formatConnect, pathsAt, roundOrder, runConnectBench } from '../../bench/connect.js';
import { createCpuAwake, schedPolicy } from '../../bench/cpu-awake.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { latencyChart } from '../../bench/charts.js';
import type { ThroughputRow } from '../../bench/throughput.js';
import { measureThroughput } from '../../bench/throughput.js';
import { BEGIN, connectMarkdown, END, spliceGenerated } from '../../bench/report.js';
import { benchEnvironment } from '../../bench/stats.js';
import { requirePrivileges } from '../helpers/privileges.js';

const SERVICES = 50;
const ENDPOINTS = 4;
const CHANGES = 12;

function positive(t: Test, value: number, what: string): void {
  t.ok(Number.isFinite(value) && value > 0, `${what} is a positive number (${value})`);
}

function checkDistribution(t: Test, d: ControlPlaneMeasurement['changes']['latencyMs'], what: string, count: number): void {
  t.equal(d.count, count, `${what}: one sample per change`);
  t.ok(d.min <= d.p50 && d.p50 <= d.p90 && d.p90 <= d.p99 && d.p99 <= d.max, `${what}: min ≤ p50 ≤ p90 ≤ p99 ≤ max`);
}

t.test('percentiles and distributions', async (t) => {
  t.equal(percentile([1, 2, 3, 4], 50), 2, 'nearest rank');
  t.equal(percentile(Array.from({ length: 200 }, (_, i) => i + 1), 99), 198, 'p99 of 200 samples is the 198th');
  t.ok(Number.isNaN(percentile([], 50)));
  t.match(distribution([3, 1, 2]), { count: 3, min: 1, p50: 2, max: 3, mean: 2 });
});

t.test('bench options', async (t) => {
  t.match(parseBenchOptions([], {}), { services: 10_000, endpoints: 10, changes: 200, quick: false, only: ['control-plane', 'agent', 'tc-datapath', 'iptables', 'flows', 'nodeport', 'maglev'] });
  t.match(parseBenchOptions(['--quick'], {}), { services: 1_000, changes: 50, quick: true, tcServices: [1, 1_000, 10_000] });
  t.match(parseBenchOptions(['--services', '300'], { SLUICE_BENCH_SERVICES: '20', SLUICE_BENCH_ENDPOINTS: '3' }), { services: 300, endpoints: 3 },
    'flags win over the environment');
  t.match(parseBenchOptions(['--only', 'iptables,control-plane'], {}), { only: ['iptables', 'control-plane'] });
  t.match(parseBenchOptions([], {}), { connectServices: [1, 1_000, 10_000, 30_000, 65_000], connectRounds: 5, startServices: [10_000, 30_000, 65_000] });
  t.match(parseBenchOptions(['--quick'], {}), { connectServices: [1, 1_000], connectRounds: 2, startServices: [], connectFamilies: ['IPv4', 'IPv6'] });
  t.same(parseBenchOptions(['--connect-families', 'IPv4'], {}).connectFamilies, ['IPv4'], 'IPv4 alone: a single-stack bed');
  t.match(parseBenchOptions([], {}), { cpuAwake: true, connectNftMaxServices: undefined }, 'CPUs kept awake, nftables at every scale by default');
  t.match(parseBenchOptions(['--no-cpu-awake', '--connect-nft-max-services', '10000'], {}), { cpuAwake: false, connectNftMaxServices: 10_000 });
  t.throws(() => parseBenchOptions(['--connect-nft-max-services', '0'], {}), { name: 'UsageError' }, '--connect-nft-max-services 0');
  for (const bad of ['IPv6', 'IPv4,IPv5', '']) t.throws(() => parseBenchOptions(['--connect-families', bad], {}), { name: 'UsageError' }, `--connect-families "${bad}"`);
  t.throws(() => parseBenchOptions(['--connect-services', '70000'], {}), { name: 'UsageError' }, 'more services than the maps hold');
  for (const bad of [['--connect-rounds', '0'], ['--services', '0'], ['--services', '1e3'], ['--endpoints', '101'], ['--only', 'nope'], ['--frobnicate']]) {
    t.throws(() => parseBenchOptions(bad, {}), { name: 'UsageError' }, bad.join(' '));
  }
});

t.test('synthetic cluster', async (t) => {
  const c = new ClusterState(200, 10);
  const shapes = Array.from({ length: 200 }, (_, i) => portsOf(i));
  t.ok(shapes.some((p) => p.length === 1 && p[0]?.name === ''), 'has unnamed single ports');
  t.ok(shapes.some((p) => p.length >= 2), 'has multi-port services');
  t.ok(shapes.some((p) => p.some((x) => x.protocol === 'UDP')), 'has UDP ports');
  const before = c.expected();
  t.equal(before.backends, before.servicePorts * 10);
  c.change(5, 1); // readiness flip
  t.equal(c.expected().backends, before.backends - portsOf(5).length, 'an unready endpoint leaves every port of its service');
  t.throws(() => new ClusterState(0, 10), RangeError);
  t.throws(() => new ClusterState(10, 101), RangeError);
});

async function benchAtTinyScale(t: Test, inProcess: boolean): Promise<void> {
  // The at-rest sample waits for V8 to shrink the heap: at tiny scale a second is plenty (or moot).
  process.env['SLUICE_BENCH_REST_MS'] = '1500';
  const r = await runControlPlaneBench({ services: SERVICES, endpoints: ENDPOINTS, changes: CHANGES, inProcess, iptables: inProcess });
  t.comment(formatControlPlane(r));
  t.equal(r.process, inProcess ? 'in-process' : 'child');
  t.doesNotThrow(() => checkSanity(r), 'sane: programmed == expected, maps match every change, restart writes nothing, pins removed');

  const cluster = new ClusterState(SERVICES, ENDPOINTS);
  const expected = cluster.expected();
  t.equal(r.scale.servicePorts, expected.servicePorts);
  t.equal(r.programmed.frontends, expected.servicePorts, 'one frontend per service port');
  t.equal(r.programmed.serviceNames, expected.servicePorts, 'one named svc_id per service port');
  // Read back after the changes: replay them (the bench's sequence) for the entries they leave.
  const changed = new ClusterState(SERVICES, ENDPOINTS);
  for (let k = 0; k < CHANGES; k++) changed.change((k * 7919 + 11) % SERVICES, k);
  t.equal(r.programmed.backends, changed.expected().backendEntries, 'every backend block complete');
  t.equal(r.programmed.wantBackends, changed.expected().backendEntries);
  t.ok(r.programmed.spotChecked > 0, 'services were checked in the maps');
  t.same(r.programmed.mismatches, []);
  t.equal(r.coldStart.services.added, expected.servicePorts);
  t.equal(r.coldStart.modelErrors, 0);

  positive(t, r.coldStart.totalMs, 'cold start');
  positive(t, r.coldStart.modelMs, 'cold start model time');
  positive(t, r.coldStart.writerMs, 'cold start writer time');
  t.ok(r.coldStart.totalMs >= r.coldStart.modelMs + r.coldStart.writerMs, 'the parts fit in the total');
  t.ok(r.coldStart.ops.writes >= expected.servicePorts * 2 + expected.backends, 'names, backends and frontends written');

  t.equal(r.changes.count, CHANGES);
  for (const [name, d] of Object.entries({ latency: r.changes.latencyMs, model: r.changes.modelMs, writer: r.changes.writerMs })) {
    checkDistribution(t, d, name, CHANGES);
  }
  positive(t, r.changes.latencyMs.p50, 'change p50');
  t.same(r.changes.mismatches, [], 'every change reached the maps');
  t.ok(r.changes.writesP50 > 0, 'a change writes map elements');

  t.equal(r.restart.ops.writes, 0, 'restart re-adopts: nothing rewritten');
  t.equal(r.restart.unchanged, expected.servicePorts);

  for (const [name, m] of Object.entries(r.memory)) {
    if (typeof m === 'number') positive(t, m, `memory.${name}`);
    else if (m) positive(t, m.rss, `memory.${name}.rss`);
  }
  if (!inProcess) {
    t.ok(r.memory.afterColdStartGc && r.memory.afterChangesGc, 'the child samples memory after a forced GC too');
    t.ok((r.memory.afterChangesGc?.heapUsed ?? Infinity) <= r.memory.afterChanges.heapUsed, 'a full GC does not grow the heap');
  }
  t.ok(r.memory.atRest.idleMs >= 0 && r.memory.atRest.idleMs < 10_000, `the at-rest sample waited a bounded time (${r.memory.atRest.idleMs.toFixed(0)} ms)`);
  const judged = Math.max(r.memory.afterColdStart.rss, r.memory.atRest.released ? r.memory.atRest.rss : r.memory.afterChanges.rss);
  t.equal(judgedRss(r.memory), judged, 'judged on after the cold start and after the changes once released (right after them without a release)');
  t.equal(r.met.rss, judged < r.goals.rssMb * 1048576);
  t.ok(r.pinDir.startsWith('/sys/fs/bpf/sluice-test-'), `pins under a per-run dir (${r.pinDir})`);
  t.ok(r.pinsRemoved, 'the bench reports its pins removed');
  t.notOk(existsSync(r.pinDir), 'and they are gone');
  t.type(r.met.coldStart, 'boolean');
  t.type(r.met.changeP99, 'boolean');
  t.type(r.met.rss, 'boolean');
  if (inProcess) {
    t.ok(r.iptables, `iptables-restore measured${r.iptablesError ? `: ${r.iptablesError}` : ''}`);
    positive(t, r.iptables?.rules ?? NaN, 'iptables rules');
    positive(t, r.iptables?.restoreMs ?? NaN, 'iptables-restore time');
  } else {
    t.equal(r.iptables, null, 'iptables skipped when asked');
  }
}

t.test('control-plane bench at tiny scale, in-process', async (t) => {
  if (!(await requirePrivileges(t))) return;
  await benchAtTinyScale(t, true);
});

t.test('control-plane bench at tiny scale, in a fresh child (plain JS)', async (t) => {
  if (!(await requirePrivileges(t))) return;
  await benchAtTinyScale(t, false);
});

t.test('connect bench: round order and the generated docs block', async (t) => {
  for (let r = 0; r < 3; r++) {
    const order = roundOrder(r);
    t.equal(order[0], 'direct', 'direct first');
    t.equal(order[order.length - 1], 'direct', 'and last');
    t.same([...new Set(order)].sort(), [...CONNECT_PATHS].sort(), 'every path in every round');
  }
  t.not(roundOrder(0)[1], roundOrder(1)[1], 'the order rotates');
  t.same(pathsAt(30_000, { nftMaxServices: 10_000 }), CONNECT_PATHS.filter((p) => p !== 'kube-proxy-nft'), 'no nftables path above --connect-nft-max-services');
  t.same(pathsAt(10_000, { nftMaxServices: 10_000 }), [...CONNECT_PATHS], 'and every path up to it');
  t.notOk(roundOrder(1, pathsAt(65_000, { nftMaxServices: 1 })).includes('kube-proxy-nft'), 'a round over the measured paths only');
  t.same(familyOrder(CONNECT_FAMILIES, 0), ['IPv4', 'IPv6']);
  t.same(familyOrder(CONNECT_FAMILIES, 1), ['IPv6', 'IPv4'], 'which family goes first alternates by round');
  t.equal(spliceGenerated(`a\n${BEGIN}\nold\n${END}\nb\n`, `${BEGIN}\nnew\n${END}`), `a\n${BEGIN}\nnew\n${END}\nb\n`, 'the block is replaced in place');
  t.match(spliceGenerated('a\n', `${BEGIN}\nnew\n${END}`), /^a\n\n<!-- BEGIN/, 'and appended when absent');
});

// The CPU-awake guard (bench/cpu-awake.ts): one SCHED_IDLE spinner pinned per CPU in a cpu.idle
// cgroup while held, none after release, nothing left after the run's cleanup.
t.test('connect bench: the CPU-awake guard holds and releases its spinners', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  try {
    const awake = await createCpuAwake(run, true);
    const cgroup = awake.method.idleCgroup;
    t.equal(awake.method.method, 'idle-spinners');
    await awake.hold();
    await awake.hold(); // idempotent: still one per CPU
    if (cgroup) {
      const pids = readFileSync(`${cgroup}/cgroup.procs`, 'utf8').trim().split('\n').filter(Boolean);
      t.equal(pids.length, awake.method.spinners, 'one spinner per CPU in the cpu.idle cgroup');
      t.equal(readFileSync(`${cgroup}/cpu.idle`, 'utf8').trim(), '1', 'the cgroup is idle-priority');
      for (const pid of pids) t.equal(schedPolicy(Number(pid)), 5, `spinner ${pid} runs at SCHED_IDLE`);
      await awake.release();
      t.equal(readFileSync(`${cgroup}/cgroup.procs`, 'utf8').trim(), '', 'released: no spinner left');
      await awake.hold(); // held again, then left to the run's cleanup
    } else {
      t.comment('no cgroup v1 cpu.idle here: spinners at SCHED_IDLE alone');
      await awake.release();
    }
    await run.destroy();
    t.same(awake.leftovers(), [], 'the cleanup removed the spinners and the cgroup');
  } finally {
    await run.destroy();
  }
  const off = await TestbedRun.start();
  const none = await createCpuAwake(off, false);
  await none.hold();
  t.match(none.method, { method: 'none', spinners: 0, idleCgroup: null }, '--no-cpu-awake holds nothing');
  await off.destroy();
});

// The connect bench, iperf3 throughput and the agent-start measurement at tiny scale: every path at
// every scale produced sane numbers through the right pod, a restart on pins broke no connection, a cold start
// reached the VIP on both Sluice paths, and the bed left nothing behind. No timing is asserted.
t.test('connect bench at tiny scale, with agent starts', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const starts: AgentStartResult[] = [];
  const throughput: ThroughputRow[] = [];
  const r = await runConnectBench({
    services: [1, 50], rounds: 1, latencyConnections: 10, rateSeconds: 0.3, rateWorkers: 2, warmupConnections: 3,
    afterScale: async (bed, services) => {
      if (services === 1) throughput.push(...(await measureThroughput(bed, { rounds: 1, seconds: 1 })));
      if (services === 50) starts.push(await measureAgentStart(bed));
    },
  });
  t.comment(formatConnect(r));
  t.same(r.leftovers, [], 'namespaces, cgroup subtree, pins and the CPU-awake cgroup removed');
  t.equal(r.cpuAwake?.method, 'idle-spinners', 'the CPUs were kept awake by default, and that is recorded');
  t.same(r.load?.map((l) => l.services), [1, 50], 'the load average recorded per scale');
  t.same(r.programming.map((p) => p.services), [1, 50]);
  for (const p of r.programming) positive(t, p.sluiceRssBytes, `agent RSS at ${p.services} services`);
  t.ok((r.programming[1]?.kubeProxyNatRules ?? 0) > (r.programming[0]?.kubeProxyNatRules ?? Infinity), 'more services, more kube-proxy rules');
  for (const p of r.programming) {
    positive(t, p.kubeProxyNftLoadMs, `nft -f of kube-proxy's nftables table at ${p.services} services`);
    // One service-ips element per service port: the measured service's http and iperf3 ports, one per filler.
    t.equal(p.kubeProxyNftElements, p.services + 1, `${p.services} services: a service-ips element per service port`);
    // Dual stack: the same again in IPv6 (ip6tables, the ip6 kube-proxy table).
    positive(t, p.ipv6?.kubeProxyRestoreMs ?? NaN, `ip6tables-restore at ${p.services} services`);
    positive(t, p.ipv6?.kubeProxyNftLoadMs ?? NaN, `nft -f of the ip6 kube-proxy table at ${p.services} services`);
    t.equal(p.ipv6?.kubeProxyNatRules, p.kubeProxyNatRules, `${p.services} services: as many ip6tables nat rules as iptables ones (every service dual-stack)`);
    t.equal(p.ipv6?.kubeProxyNftElements, p.services + 1, `${p.services} services: an ip6 service-ips element per service port`);
  }
  t.ok((r.programming[1]?.kubeProxyNftRules ?? 0) > (r.programming[0]?.kubeProxyNftRules ?? Infinity), 'more services, more nftables rules');
  t.same(r.options.families, ['IPv4', 'IPv6'], 'both families by default');
  t.equal(r.rows.length, 2 * CONNECT_PATHS.length * CONNECT_FAMILIES.length, 'a row per path, family and scale');
  for (const family of CONNECT_FAMILIES) {
    for (const services of [1, 50]) {
      t.same(r.rows.filter((x) => x.family === family && x.services === services).map((x) => x.path), [...CONNECT_PATHS], `${family} at ${services}: every path`);
    }
  }
  for (const row of r.rows) {
    const what = `${row.path} (${row.family}) at ${row.services}`;
    t.equal(row.failures + row.misrouted, 0, `${what}: every connection reached its pod`, { failureCodes: row.failureCodes });
    t.equal(row.perMeasurement.length, row.path === 'direct' ? 2 : 1, `${what}: measured ${row.path === 'direct' ? 'twice' : 'once'} a round`);
    t.ok(row.connections > 10, `${what}: latency and rate connections counted (${row.connections})`);
    positive(t, row.latencyP50Ms, `${what}: p50`);
    t.ok(row.latencyP99Ms >= row.latencyP50Ms, `${what}: p99 ≥ p50`);
    positive(t, row.connPerSec, `${what}: conn/s`);
  }
  t.same(throughput.map((x) => x.path).sort(), [...CONNECT_PATHS].sort(), 'iperf3 on every path');
  for (const x of throughput) {
    positive(t, x.gbitPerSec, `${x.path}: Gbit/s`);
    positive(t, x.cpuSecondsPerGb, `${x.path}: CPU s/GB`);
    // The client pod's ACKs per data segment it sent: where iperf3's server ran (bench/throughput.ts).
    for (const m of x.perMeasurement) positive(t, m.acksPerSegment ?? NaN, `${x.path}: ACKs per segment`);
  }
  const s = starts[0];
  t.ok(s, 'agent starts measured');
  if (s) {
    t.equal(s.services, 50);
    t.equal(s.restart.during.failures, 0, 'no connection failed while the agent restarted on its pins');
    t.ok(s.restart.during.connections > 0, 'connections were made during the restart');
    for (const [name, c] of [['restart', s.restart], ['cold start', s.coldStart]] as const) {
      positive(t, c.programmedMs, `${name}: programmed`);
      t.ok(c.settledMs >= c.programmedMs, `${name}: settled once programmed`);
      positive(t, c.cpuSeconds, `${name}: CPU seconds`);
      positive(t, c.rssBytes, `${name}: RSS`);
      t.ok(c.peakRssBytes >= c.rssBytes, `${name}: peak RSS ≥ RSS`);
    }
    for (const path of ['sluice-connect', 'sluice-tc'] as const) positive(t, s.coldStart.firstConnectionMs[path] ?? NaN, `cold start: first connection on ${path}`);
  }
  const md = connectMarkdown({ environment: benchEnvironment(), connect: r, starts, throughput });
  t.match(md, /\| Sluice TC only \| [\d.]+ \|/, 'and the throughput');
  t.match(md, /\| 50 \| IPv4 \| Sluice TC only \|/, 'the docs block has the rows');
  t.match(md, /\| 50 \| IPv6 \| Sluice TC only \| [\d.]+ \|/, 'in both families');
  t.match(md, /\| 50 \| IPv6 \| kube-proxy \| [\d.]+ \|/, 'IPv6 through ip6tables');
  t.match(md, /\| 50 \| IPv4 \| kube-proxy nftables \|/, 'and the nftables baseline');
  t.match(md, /ip6tables-restore/, 'the IPv6 programming columns');
  t.match(md, /restart on pinned maps/, 'and the starts');
  const svg = await latencyChart(r.rows, 'test');
  t.match(svg, /^<svg/, 'the chart renders as SVG');
  t.match(svg, /Sluice connect-time/, 'with a line per path');
});
