// The external-throughput bench (bench/external-throughput.ts) at its --quick size, so it cannot
// rot: one round, one second per path and direction, on the real four-node bed with an agent per
// node. Asserted: every path and direction moved bytes and was charged CPU, the bytes took the
// path's way (through the ingress node, or — a DSR or direct download — not), the docs block and
// the chart render, and the bed left nothing behind. Never a timing.
import t from 'tap';
import { parseBenchOptions } from '../../bench/args.js';
import { externalMarkdown, externalSanity, EXTERNAL_BEGIN, EXTERNAL_END } from '../../bench/external-report.js';
import { DIRECTIONS, EXTERNAL_PATHS, externalRoundOrder, formatExternalThroughput, PATH_NAMES, runExternalThroughputBench } from '../../bench/external-throughput.js';
import { externalThroughputChart } from '../../bench/charts.js';
import { benchEnvironment } from '../../bench/stats.js';
import { requirePrivileges } from '../helpers/privileges.js';

// A four-node bed with four agents: on a loaded 2-core machine more than tap's default.
t.setTimeout(600_000);

t.test('options and round order', async (t) => {
  t.match(parseBenchOptions(['--quick'], {}), { externalRounds: 1, externalSeconds: 1 });
  t.match(parseBenchOptions([], {}), { externalRounds: 5, externalSeconds: 4 });
  t.match(parseBenchOptions(['--external-rounds', '3', '--external-seconds', '2'], {}), { externalRounds: 3, externalSeconds: 2 });
  t.ok(parseBenchOptions([], {}).only.includes('external-throughput'), 'part of a plain (and a --quick) run');
  for (const bad of [['--external-rounds', '0'], ['--external-seconds', '1.5'], ['--external-seconds', '61']]) {
    t.throws(() => parseBenchOptions(bad, {}), { name: 'UsageError' }, bad.join(' '));
  }
  for (let r = 0; r < 3; r++) {
    const order = externalRoundOrder(r);
    t.equal(order[0], 'direct', 'direct first');
    t.equal(order[order.length - 1], 'direct', 'and last');
    t.same([...new Set(order)].sort(), [...EXTERNAL_PATHS].sort(), 'every path every round');
  }
  t.not(externalRoundOrder(0)[1], externalRoundOrder(1)[1], 'the modes rotate');
});

t.test('external-throughput bench at --quick size', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const r = await runExternalThroughputBench({ rounds: 1, seconds: 1 });
  t.comment(formatExternalThroughput(r));
  t.same(r.leftovers, [], 'namespaces, cgroup subtree and pins removed');
  t.same(externalSanity(r), [], 'sane: bytes and CPU on every path, each path the way its mode sends, nothing left');
  // The bench retries a failed transfer (a long run keeps its results); here any failure fails:
  // lost transfers were once a datapath bug (a conntrack clock wrap, bpf/lib/clock.h).
  t.same(r.rows.flatMap((x) => x.failures), [], 'no transfer failed, not even once');
  t.equal(r.rows.length, EXTERNAL_PATHS.length * DIRECTIONS.length, 'a row per path and direction');
  for (const row of r.rows) t.equal(row.perMeasurement.length, row.path === 'direct' ? 2 : 1, `${row.path} ${row.direction}: measured ${row.path === 'direct' ? 'twice' : 'once'}`);
  t.equal(r.ingressNodes.snat, r.ingressNodes.direct, 'direct is routed through the SNAT node');
  t.equal(new Set([r.ingressNodes.snat, r.ingressNodes.tunnel, r.ingressNodes.dsr, r.backendNode]).size, 4, 'one ingress node per mode, the backend on a fourth');
  const dsr = r.rows.find((x) => x.path === 'dsr' && x.direction === 'download');
  const tunnel = r.rows.find((x) => x.path === 'tunnel' && x.direction === 'download');
  t.ok(dsr && tunnel && dsr.ingressTxPerByte < tunnel.ingressTxPerByte / 5, 'a DSR download leaves node A idle, a Tunnel one goes through it');

  const md = externalMarkdown({ environment: benchEnvironment(), result: r });
  t.ok(md.startsWith(EXTERNAL_BEGIN) && md.endsWith(EXTERNAL_END), 'the docs block is delimited');
  for (const path of EXTERNAL_PATHS) t.match(md, new RegExp(`\\| ${PATH_NAMES[path].replace(/[()]/g, '\\$&')} \\| download \\| [\\d.]+ \\|`), `the block has ${path}`);
  const svg = await externalThroughputChart(r.rows, PATH_NAMES, 'test');
  t.match(svg, /^<svg/, 'the chart renders as SVG');
  t.match(svg, /NodePort, DSR/, 'with a bar per path');
});

t.test('sanity catches a bed that left something or a path that went the wrong way', async (t) => {
  const sample = {
    gbitPerSec: 1, bytes: 1e8, wallSeconds: 1, cpuSecondsPerGb: 1, clientSecondsPerGb: 0.5, serverSecondsPerGb: 0.4, ksoftirqdSecondsPerGb: 0.1,
    machineSecondsPerGb: 2, machineSoftirqSecondsPerGb: 0.2, ingressTxPerByte: 1, backendTxPerByte: 1, retransmits: 0, senderCpuPct: 10, receiverCpuPct: 10,
  };
  const rows = EXTERNAL_PATHS.flatMap((path) => DIRECTIONS.map((direction) => {
    const s = { ...sample, ingressTxPerByte: direction === 'download' && (path === 'dsr' || path === 'direct') ? 0.01 : 1.01 };
    return { ...s, path, direction, retransmits: 0, failures: [], perMeasurement: [s] };
  }));
  const base = {
    bench: 'external-throughput' as const, options: { rounds: 1, seconds: 1 }, ingressNodes: { direct: 'a', snat: 'a', tunnel: 'b', dsr: 'c' },
    backendNode: 'd', idleBusyPerSecond: [0.1], rows, leftovers: [],
  };
  t.same(externalSanity(base), [], 'a good run passes');
  t.match(externalSanity({ ...base, leftovers: ['/run/netns/x'] }), [/left \/run\/netns\/x/]);
  const wrong = rows.map((x) => (x.path === 'dsr' && x.direction === 'download' ? { ...x, perMeasurement: [{ ...sample, ingressTxPerByte: 1 }] } : x));
  t.match(externalSanity({ ...base, rows: wrong }), [/dsr download: the ingress node sent 1.000/]);
  t.match(externalSanity({ ...base, rows: rows.filter((x) => x.path !== 'tunnel') }), [/tunnel upload: not measured/, /tunnel download: not measured/]);
});
