// BlockEntries, the mirror's per-block store: Map semantics (size, get, set, delete, ordered
// keys/entries, equals) over a packed array, and stray far ordinals kept apart without growing it.
import t from 'tap';
import { BlockEntries } from '../../src/dataplane/mirror.js';
import type { BackendValue4 } from '../../src/bpf/sluice-structs.js';

// Every field varies, flags and node_addr included: they are packed with the port and the address.
const value = (n: number): BackendValue4 => ({ addr: `10.0.0.${n}`, port: 8080 + n, flags: n % 4, node_addr: `192.168.0.${n % 7}` });

t.test('behaves as a Map from ordinal to value, in ascending order', async (t) => {
  const b = new BlockEntries();
  const model = new Map<number, BackendValue4>();
  // A seeded walk of sets and deletes, checked against a Map after every step.
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let step = 0; step < 2000; step++) {
    const ordinal = next() % 24;
    if (next() % 3 === 0) {
      b.delete(ordinal);
      model.delete(ordinal);
    } else {
      const v = value(step % 250);
      b.set(ordinal, v);
      model.set(ordinal, v);
    }
    t.equal(b.size, model.size);
    if (step % 97 === 0) b.trim();
    const want = [...model].sort((x, y) => x[0] - y[0]);
    if (JSON.stringify(b.entries()) !== JSON.stringify(want)) {
      t.fail(`step ${step}: entries differ`);
      return;
    }
  }
  for (let o = 0; o < 24; o++) {
    const want = model.get(o);
    t.same(b.get(o), want, `get(${o})`);
    t.equal(b.has(o), want !== undefined, `has(${o})`);
    if (want) {
      t.ok(b.equals(o, { ...want }), `equals(${o})`);
      for (const field of ['addr', 'port', 'flags', 'node_addr'] as const) {
        const other = { ...want, [field]: field === 'addr' || field === 'node_addr' ? '10.9.9.9' : want[field] + 1 };
        t.notOk(b.equals(o, other), `equals(${o}) sees ${field}`);
      }
    } else t.notOk(b.equals(o, value(1)), `equals(${o}) on a missing entry`);
  }
  t.same(b.keys(), [...model.keys()].sort((x, y) => x - y));
  for (const from of [0, 5, 23, 24]) t.same(b.ordinalsFrom(from), [...model.keys()].filter((o) => o >= from).sort((x, y) => x - y), `ordinalsFrom(${from})`);
});

t.test('a stray far ordinal is held apart and still listed in order', async (t) => {
  const b = new BlockEntries();
  b.set(1, value(1));
  b.set(4_000_000_000, value(2));
  b.set(70_000, value(3));
  t.equal(b.size, 3);
  t.same(b.keys(), [1, 70_000, 4_000_000_000]);
  t.same(b.ordinalsFrom(2), [70_000, 4_000_000_000]);
  t.same(b.ordinalsFrom(70_001), [4_000_000_000]);
  t.same(b.get(4_000_000_000), value(2));
  t.same(b.get(70_000), value(3));
  t.ok(b.equals(70_000, value(3)));
  t.notOk(b.equals(70_000, value(4)));
  t.notOk(b.equals(70_001, value(3)));
  b.delete(4_000_000_000);
  b.delete(4_000_000_000);
  t.equal(b.size, 2);
  t.same(b.keys(), [1, 70_000]);
  b.delete(1);
  b.delete(70_000);
  t.equal(b.size, 0);
  t.same(b.entries(), []);
});
