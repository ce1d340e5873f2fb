// Small helpers shared by the benches: percentiles, the environment a run was measured in, and
// where results go.
import { cpus, loadavg, release } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { fromPackageRoot } from '../src/bpf/native.js';

export interface Distribution {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending list (p in (0, 100]). NaN for an empty list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return {
    count: sorted.length,
    min: sorted[0] ?? NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

export interface BenchEnvironment {
  date: string;
  kernel: string;
  node: string;
  cpus: number;
  cpuModel: string;
  /** 1-minute load average when the bench started: other work on the machine skews timings. */
  loadavg1: number;
  command: string;
}

export function benchEnvironment(): BenchEnvironment {
  const list = cpus();
  return {
    date: new Date().toISOString(),
    kernel: release(),
    node: process.version,
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    loadavg1: Number((loadavg()[0] ?? 0).toFixed(2)),
    command: ['node', ...process.execArgv, ...process.argv.slice(1).map((a) => a.replace(fromPackageRoot() + '/', ''))].join(' '),
  };
}

export const RESULTS_DIR = fromPackageRoot('.bench-results');

/** Writes `.bench-results/<name>.json` and returns its path. */
export async function writeResult(name: string, data: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const path = fromPackageRoot('.bench-results', `${name}.json`);
  await writeFile(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}

export const ms = (v: number, digits = 1): string => (Number.isFinite(v) ? `${v.toFixed(digits)} ms` : '-');
export const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(1)} MB`;
