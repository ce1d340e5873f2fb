// Breaks a V8 CPU profile (node --cpu-prof, e.g. of bench/start-profile.ts's agent starts) down:
// self time by source file (node_modules by package, Node's own internals, native), and the top
// functions by self time and by total time (self + callees).
//
//   node --import ./scripts/ts-loader.mjs bench/cpu-profile-summary.ts FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

function fileOf(url: string): string {
  if (url === '') return '(native / VM)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm:${nm[1]}`;
  if (url.startsWith('node:')) return '(node internals)';
  const src = /\/(src|dist\/src|bench|test)\/(.*)$/.exec(url);
  return src ? `${src[1]}/${src[2]}` : url;
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true });
const top = Number(values.top);
for (const file of positionals) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = (p.endTime - p.startTime) / 1000;
  const byFile = new Map<string, number>();
  const byFn = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id) as ProfileNode;
    const f = fileOf(n.callFrame.url);
    byFile.set(f, (byFile.get(f) ?? 0) + us);
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${f}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    // Inclusive: every distinct frame on the stack gets the sample once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur) as ProfileNode;
      const key = `${c.callFrame.functionName || '(anonymous)'} ${fileOf(c.callFrame.url)}:${c.callFrame.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  const idle = [...self].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, us]) => a + us, 0);
  console.log(`\n${file}: ${total.toFixed(0)} ms profiled, ${(idle / 1000).toFixed(0)} ms idle, ${((total * 1000 - idle) / 1000).toFixed(0)} ms on the main thread`);
  console.log('self time by file:');
  for (const [f, us] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${ms(us)}  ${f}`);
  console.log('self time by function:');
  for (const [f, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${ms(us)}  ${f}`);
  console.log('total time by function:');
  for (const [f, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top * 2)) console.log(`  ${ms(us)}  ${f}`);
}
