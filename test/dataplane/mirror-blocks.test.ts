// BlockEntries, the mirror's packed per-block store: Map semantics (size, get, set, delete,
// ordered keys/entries) and matches() equal to sameBackend, over a seeded walk; values that do
// not pack (far ordinals, out-of-range or non-canonical fields) kept as they are.
import t from 'tap';
import { BlockEntries } from '../../src/dataplane/mirror.js';
import { sameBackend } from '../../src/dataplane/service-target.js';
import type { BackendValue4 } from '../../src/bpf/sluice-structs.js';

const value = (n: number): BackendValue4 => ({
  addr: `${(n * 37) % 256}.${n % 7}.200.${n % 256}`, port: 1 + ((n * 131) % 65535), flags: n % 4, node_addr: n % 3 === 0 ? '0.0.0.0' : `192.168.${n % 5}.255`,
});

t.test('behaves as a Map from ordinal to value, in ascending order; matches() is sameBackend', async (t) => {
  const b = new BlockEntries();
  const model = new Map<number, BackendValue4>();
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let step = 0; step < 3000; step++) {
    const ordinal = next() % 24;
    if (next() % 3 === 0) {
      b.delete(ordinal);
      model.delete(ordinal);
    } else {
      const v = value(step);
      b.set(ordinal, v);
      model.set(ordinal, v);
    }
    const probe = value(next() % 3000);
    const o = next() % 24;
    const want = [...model].sort((x, y) => x[0] - y[0]);
    const problems: string[] = [];
    if (b.size !== model.size) problems.push(`size ${b.size} vs ${model.size}`);
    if (JSON.stringify(b.entries()) !== JSON.stringify(want)) problems.push('entries differ');
    const m = model.get(o);
    if (b.matches(o, probe) !== (m !== undefined && sameBackend(m, probe))) problems.push(`matches(${o}) of a probe`);
    if (m && !b.matches(o, m)) problems.push(`matches(${o}) of its own value`);
    if (problems.length > 0) {
      t.fail(`step ${step}: ${problems.join('; ')}`);
      return;
    }
  }
  for (let o = 0; o < 24; o++) t.same(b.get(o), model.get(o), `get(${o})`);
  t.same(b.keys(), [...model.keys()].sort((x, y) => x - y));
  t.ok(b.size > 0, 'the walk left entries to compare');
});

t.test('values that do not pack are kept as they are, in order with the rest', async (t) => {
  const b = new BlockEntries();
  const odd = { addr: '010.1.2.3', port: 70000, flags: 300, node_addr: 'x' } as BackendValue4;
  b.set(1, value(1));
  b.set(4_000_000_000, value(2));
  b.set(3, odd);
  b.set(70_000, value(3));
  t.equal(b.size, 4);
  t.same(b.keys(), [1, 3, 70_000, 4_000_000_000]);
  t.equal(b.get(3), odd, 'the very object');
  t.ok(b.matches(3, { ...odd }) && !b.matches(3, value(3)));
  t.same(b.get(4_000_000_000), value(2));
  b.set(3, value(9));
  t.same(b.get(3), value(9), 'replaced by a packable value');
  t.equal(b.size, 4);
  b.delete(4_000_000_000);
  b.delete(4_000_000_000);
  t.equal(b.size, 3);
  for (const o of [1, 3, 70_000]) b.delete(o);
  t.equal(b.size, 0);
  t.same(b.entries(), []);
  t.equal(b.get(1), undefined);
  t.notOk(b.matches(1, value(1)));
});
