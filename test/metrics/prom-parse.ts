// A strict reader of the Prometheus text format (0.0.4), for tests: every line must parse,
// every sample must belong to a family whose # TYPE came first, HELP/TYPE appear once, a
// family's samples are contiguous, series are unique, and histograms are self-consistent.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(\\{(.*)\\})? (\\S+)( -?\\d+)?$`);

function parseValue(text: string, line: number): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(text.slice(i));
    if (!m?.[1]) throw new Error(`line ${line}: bad label at ${JSON.stringify(text.slice(i))}`);
    const name = m[1];
    i += m[0].length;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`line ${line}: unterminated label value for ${name}`);
      i++;
      if (c === '"') break;
      if (c === '\n') throw new Error(`line ${line}: raw newline in label value`);
      if (c === '\\') {
        const e = text[i++];
        if (e === '\\') value += '\\';
        else if (e === '"') value += '"';
        else if (e === 'n') value += '\n';
        else throw new Error(`line ${line}: bad escape \\${e ?? ''} in label ${name}`);
      } else value += c;
    }
    if (name in labels) throw new Error(`line ${line}: label ${name} repeated`);
    labels[name] = value;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`line ${line}: expected ',' after label ${name}`);
  }
  return labels;
}

/** HELP text allows exactly two escapes: a doubled backslash and backslash-n. */
function unescapeHelp(text: string, line: number): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = text[++i];
    if (e === '\\') out += '\\';
    else if (e === 'n') out += '\n';
    else throw new Error(`line ${line}: bad escape \\${e ?? ''} in HELP`);
  }
  return out;
}

function familyOf(sample: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(sample);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sample.endsWith(suffix)) {
      const f = families.get(sample.slice(0, -suffix.length));
      if (f?.type === 'histogram' || f?.type === 'summary') return f;
    }
  }
  return undefined;
}

export function parsePrometheus(text: string): Map<string, Family> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const helps = new Map<string, string>();
  text.split('\n').slice(0, -1).forEach((raw, idx) => {
    const line = idx + 1;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
    if (meta) {
      const [, kind, name = '', rest = ''] = meta;
      if (!new RegExp(`^${NAME}$`).test(name)) throw new Error(`line ${line}: bad metric name ${name}`);
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`line ${line}: second HELP for ${name}`);
        helps.set(name, unescapeHelp(rest, line));
        return;
      }
      if (families.has(name)) throw new Error(`line ${line}: second TYPE for ${name}`);
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`line ${line}: bad type ${rest}`);
      if (current) closed.add(current.name);
      current = { name, type: rest, help: helps.get(name) ?? '', samples: [] };
      families.set(name, current);
      return;
    }
    if (raw.startsWith('#') || raw === '') return;
    const m = SAMPLE.exec(raw);
    if (!m?.[1] || m[4] === undefined) throw new Error(`line ${line}: not a sample: ${JSON.stringify(raw)}`);
    const family = familyOf(m[1], families);
    if (!family) throw new Error(`line ${line}: sample ${m[1]} has no # TYPE before it`);
    if (family !== current || closed.has(family.name)) throw new Error(`line ${line}: samples of ${family.name} are not contiguous`);
    const labels = parseLabels(m[3] ?? '', line);
    const id = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(id)) throw new Error(`line ${line}: duplicate series ${id}`);
    seen.add(id);
    const value = parseValue(m[4], line);
    if (family.type === 'counter' && !(value >= 0)) throw new Error(`line ${line}: counter ${m[1]} is ${value}`);
    family.samples.push({ name: m[1], labels, value });
  });
  for (const [name, help] of helps) {
    const f = families.get(name);
    if (!f) throw new Error(`HELP for ${name} without a TYPE`);
    f.help = help;
  }
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const e = series.get(key) ?? { buckets: [] };
    series.set(key, e);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}: bucket without le`);
      e.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name === `${f.name}_sum`) e.sum = s.value;
    else if (s.name === `${f.name}_count`) e.count = s.value;
    else throw new Error(`${f.name}: unexpected sample ${s.name}`);
  }
  for (const [key, e] of series) {
    const last = e.buckets.at(-1);
    if (!last || last[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket last`);
    e.buckets.forEach(([le, v], i) => {
      const prev = e.buckets[i - 1];
      if (prev && (le <= prev[0] || v < prev[1])) throw new Error(`${f.name}${key}: buckets not ascending and cumulative`);
    });
    if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: missing _sum or _count`);
    if (e.count !== last[1]) throw new Error(`${f.name}${key}: _count ${e.count} != +Inf bucket ${last[1]}`);
  }
}

/** The value of one series, or undefined. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(s.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => s.labels[k] === labels[k])) return s.value;
    }
  }
  return undefined;
}
