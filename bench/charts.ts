// SVG charts of the connect bench, drawn by vega-lite (compiled to a vega spec) and rendered by
// vega's headless view: plain SVG text, no canvas, no browser.
import * as vega from 'vega';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import type { ConnectRow } from './connect.js';
import type { ThroughputRow } from './throughput.js';

const PATH_LABELS: Record<string, string> = {
  direct: 'direct (pod IP)', 'kube-proxy': 'kube-proxy iptables', 'kube-proxy-nft': 'kube-proxy nftables', 'sluice-connect': 'Sluice connect-time', 'sluice-tc': 'Sluice TC only',
};

// Specs are built as plain objects (vega-lite's types reject a unit spec built by a helper).
async function render(spec: object): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec as TopLevelSpec).spec), { renderer: 'none' });
  return view.toSVG();
}

const values = (rows: readonly ConnectRow[]) => rows.map((r) => ({
  services: r.services, path: PATH_LABELS[r.path] ?? r.path, family: r.family ?? 'IPv4', p50: r.latencyP50Ms, p99: r.latencyP99Ms, rate: r.connPerSec,
}));

const x = { field: 'services', type: 'quantitative', title: 'services', scale: { type: 'log' }, axis: { format: '~s' } } as const;
const color = { field: 'path', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2 } } as const;
// One line per path and family: IPv4 solid, IPv6 dashed.
const strokeDash = { field: 'family', type: 'nominal', title: null, sort: ['IPv4', 'IPv6'], legend: { orient: 'bottom' } } as const;

function lines(title: string, field: string, yTitle: string): Record<string, unknown> {
  return {
    ...(title ? { title } : {}), width: 300, height: 220, mark: { type: 'line', point: true },
    encoding: { x, y: { field, type: 'quantitative', title: yTitle }, color, strokeDash },
  };
}

/** Connect latency (p50 and p99) against the service count, one line per path. */
export function latencyChart(rows: readonly ConnectRow[], subtitle: string): Promise<string> {
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Connect latency vs services (client pod → node → backend pod)', subtitle },
    data: { values: values(rows) },
    hconcat: [lines('p50', 'p50', 'ms'), lines('p99', 'p99', 'ms')],
  });
}

/** Connections per second against the service count, one line per path. */
export function rateChart(rows: readonly ConnectRow[], subtitle: string): Promise<string> {
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Short TCP connections per second vs services', subtitle },
    data: { values: values(rows) },
    ...lines('', 'rate', 'connections/s'),
  });
}

/** iperf3 Gbit/s and the machine's CPU seconds per GB, one bar per path. */
export function throughputChart(rows: readonly ThroughputRow[], subtitle: string): Promise<string> {
  const bars = (field: string, title: string) => ({
    width: 260, height: 160, mark: 'bar',
    encoding: { y: { field: 'path', type: 'nominal', title: null, sort: null }, x: { field, type: 'quantitative', title }, color: { field: 'path', type: 'nominal', legend: null } },
  });
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `iperf3 through a Service, one TCP stream, ${rows[0]?.services ?? 0} services`, subtitle },
    data: { values: rows.map((r) => ({ path: PATH_LABELS[r.path] ?? r.path, gbit: r.gbitPerSec, cpu: r.cpuSecondsPerGb })) },
    hconcat: [bars('gbit', 'Gbit/s'), bars('cpu', 'machine CPU s per GB')],
  });
}

/**
 * External traffic (bench/external-throughput.ts): iperf3 Gbit/s, CPU seconds per GB (iperf3's
 * cgroups + ksoftirqd) and the bytes the ingress node's uplink sent per byte received, by path,
 * one bar per direction (upload: the client sends; download: the pod sends).
 */
export function externalThroughputChart(rows: readonly { path: string; direction: string; gbitPerSec: number; cpuSecondsPerGb: number; ingressTxPerByte: number }[],
  labels: Record<string, string>, subtitle: string): Promise<string> {
  const bars = (field: string, title: string) => ({
    width: 200, height: 200, mark: 'bar',
    encoding: {
      y: { field: 'path', type: 'nominal', title: null, sort: null }, yOffset: { field: 'direction', type: 'nominal', sort: ['upload', 'download'] },
      x: { field, type: 'quantitative', title },
      color: { field: 'direction', type: 'nominal', title: null, sort: ['upload', 'download'], legend: { orient: 'bottom' } },
    },
  });
  return render({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'External client → NodePort → pod on another node, iperf3, one TCP stream', subtitle },
    data: { values: rows.map((r) => ({ path: labels[r.path] ?? r.path, direction: r.direction, gbit: r.gbitPerSec, cpu: r.cpuSecondsPerGb, tx: r.ingressTxPerByte })) },
    hconcat: [bars('gbit', 'Gbit/s'), bars('cpu', 'CPU s per GB (iperf3 + ksoftirqd)'), bars('tx', 'ingress node uplink bytes per byte')],
  });
}
