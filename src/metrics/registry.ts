// A small Prometheus registry (text exposition format 0.0.4) so the agent needs no metrics
// dependency: counters, gauges and histograms with declared label names, correct escaping, and
// # HELP / # TYPE for every family. Counters fed from BPF per-CPU totals are set to the summed
// value (setTotal) rather than incremented: the kernel keeps the count, we only expose it.

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class MetricError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetricError';
  }
}

export const escapeHelp = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
export const escapeLabelValue = (s: string): string => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

export interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

abstract class Metric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected readonly series = new Map<string, { labels: string[]; state: S }>();
  abstract readonly type: MetricType;

  constructor(opts: MetricOptions<L>, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(opts.name)) throw new MetricError(`metric name ${JSON.stringify(opts.name)} is not valid`);
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames ?? [];
    for (const l of this.labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__') || reserved.includes(l)) {
        throw new MetricError(`${opts.name}: label name ${JSON.stringify(l)} is not allowed`);
      }
    }
    if (new Set(this.labelNames).size !== this.labelNames.length) throw new MetricError(`${opts.name}: duplicate label names`);
  }

  /** Label values in declared order; the label set must match exactly. */
  protected values(labels: LabelValues<L> | undefined): string[] {
    const given = labels ?? ({} as LabelValues<L>);
    const keys = Object.keys(given);
    const missing = this.labelNames.filter((l) => !(l in given));
    const extra = keys.filter((k) => !(this.labelNames as readonly string[]).includes(k));
    if (missing.length || extra.length) {
      throw new MetricError(
        `${this.name}: labels {${keys.join(',')}} do not match the declared {${this.labelNames.join(',')}}`,
      );
    }
    return this.labelNames.map((l) => String(given[l]));
  }

  protected entry(labels: LabelValues<L> | undefined, init: () => S): S {
    const values = this.values(labels);
    const key = JSON.stringify(values);
    let e = this.series.get(key);
    if (!e) {
      e = { labels: values, state: init() };
      this.series.set(key, e);
    }
    return e.state;
  }

  /** Drops one series (e.g. a deleted service). */
  remove(labels: LabelValues<L>): boolean {
    return this.series.delete(JSON.stringify(this.values(labels)));
  }

  /** Drops every series. */
  reset(): void {
    this.series.clear();
  }

  /** Keeps only the series for which `keep` returns true. */
  retain(keep: (labels: Record<L, string>) => boolean): void {
    for (const [key, e] of this.series) {
      const labels = Object.fromEntries(this.labelNames.map((l, i) => [l, e.labels[i] ?? ''])) as Record<L, string>;
      if (!keep(labels)) this.series.delete(key);
    }
  }

  protected labelText(values: readonly string[], extra: [string, string][] = []): string {
    const pairs: [string, string][] = [...this.labelNames.map((l, i): [string, string] => [l, values[i] ?? '']), ...extra];
    if (pairs.length === 0) return '';
    return `{${pairs.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
  }

  protected abstract sampleLines(): string[];

  expose(): string {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.sampleLines()].join('\n') + '\n';
  }
}

abstract class ScalarMetric<L extends string> extends Metric<L, { value: number }> {
  constructor(opts: MetricOptions<L>) {
    super(opts);
    // An unlabelled metric exists from the start (0), so it is visible before its first update.
    if (this.labelNames.length === 0) this.entry(undefined, () => ({ value: 0 }));
  }

  get(labels?: LabelValues<L>): number {
    return this.series.get(JSON.stringify(this.values(labels)))?.state.value ?? 0;
  }

  protected sampleLines(): string[] {
    return [...this.series.values()].map((e) => `${this.name}${this.labelText(e.labels)} ${formatValue(e.state.value)}`);
  }
}

export class Counter<L extends string = never> extends ScalarMetric<L> {
  readonly type = 'counter';

  inc(labels?: LabelValues<L>, by = 1): void {
    if (!(by >= 0)) throw new MetricError(`${this.name}: a counter only goes up (got ${by})`);
    this.entry(labels, () => ({ value: 0 })).value += by;
  }

  /** Sets a total kept elsewhere (BPF per-CPU counters). A lower value reads as a reset. */
  setTotal(labels: LabelValues<L> | undefined, total: number): void {
    if (!(total >= 0)) throw new MetricError(`${this.name}: a counter total must be >= 0 (got ${total})`);
    this.entry(labels, () => ({ value: 0 })).value = total;
  }
}

export class Gauge<L extends string = never> extends ScalarMetric<L> {
  readonly type = 'gauge';

  set(labels: LabelValues<L> | undefined, value: number): void {
    this.entry(labels, () => ({ value: 0 })).value = value;
  }

  inc(labels?: LabelValues<L>, by = 1): void {
    this.entry(labels, () => ({ value: 0 })).value += by;
  }

  dec(labels?: LabelValues<L>, by = 1): void {
    this.inc(labels, -by);
  }
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, ascending; +Inf is implied. */
  buckets: readonly number[];
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram<L extends string = never> extends Metric<L, HistogramState> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(opts: HistogramOptions<L>) {
    super(opts, ['le']);
    const b = opts.buckets;
    if (b.length === 0 || b.some((x, i) => !Number.isFinite(x) || (i > 0 && x <= (b[i - 1] ?? -Infinity)))) {
      throw new MetricError(`${opts.name}: buckets must be finite and strictly ascending`);
    }
    this.buckets = [...b];
    if (this.labelNames.length === 0) this.entry(undefined, () => this.empty());
  }

  private empty(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(labels: LabelValues<L> | undefined, value: number): void {
    if (Number.isNaN(value)) throw new MetricError(`${this.name}: cannot observe NaN`);
    const s = this.entry(labels, () => this.empty());
    this.buckets.forEach((le, i) => {
      if (value <= le) s.counts[i] = (s.counts[i] ?? 0) + 1;
    });
    s.sum += value;
    s.count += 1;
  }

  /** Count and sum of one series (for tests and status). */
  snapshot(labels?: LabelValues<L>): { count: number; sum: number } {
    const s = this.series.get(JSON.stringify(this.values(labels)))?.state;
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  protected sampleLines(): string[] {
    const lines: string[] = [];
    for (const e of this.series.values()) {
      // Buckets are stored per bound (cumulative by construction: value <= le counts in each).
      this.buckets.forEach((le, i) => {
        lines.push(`${this.name}_bucket${this.labelText(e.labels, [['le', formatValue(le)]])} ${e.state.counts[i] ?? 0}`);
      });
      lines.push(`${this.name}_bucket${this.labelText(e.labels, [['le', '+Inf']])} ${e.state.count}`);
      lines.push(`${this.name}_sum${this.labelText(e.labels)} ${formatValue(e.state.sum)}`);
      lines.push(`${this.name}_count${this.labelText(e.labels)} ${e.state.count}`);
    }
    return lines;
  }
}

interface Family {
  readonly name: string;
  expose(): string;
}

/** A set of metric families, exposed together; collectors refresh values just before a scrape. */
export class Registry {
  private readonly metrics = new Map<string, Family>();
  private readonly collectors: (() => void | Promise<void>)[] = [];

  private add<M extends Family>(metric: M): M {
    if (this.metrics.has(metric.name)) throw new MetricError(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }

  counter<L extends string = never>(opts: MetricOptions<L>): Counter<L> {
    return this.add(new Counter<L>(opts));
  }

  gauge<L extends string = never>(opts: MetricOptions<L>): Gauge<L> {
    return this.add(new Gauge<L>(opts));
  }

  histogram<L extends string = never>(opts: HistogramOptions<L>): Histogram<L> {
    return this.add(new Histogram<L>(opts));
  }

  /** Runs before every scrape (e.g. read per-CPU counters). */
  onCollect(fn: () => void | Promise<void>): void {
    this.collectors.push(fn);
  }

  /** Runs the collectors; returns their errors (a failing collector must not hide the rest). */
  async collect(): Promise<Error[]> {
    const errors: Error[] = [];
    for (const fn of this.collectors) {
      try {
        await fn();
      } catch (err) {
        errors.push(err instanceof Error ? err : new Error(String(err)));
      }
    }
    return errors;
  }

  /** The exposition text of every family, in registration order. */
  expose(): string {
    return [...this.metrics.values()].map((m) => m.expose()).join('');
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
