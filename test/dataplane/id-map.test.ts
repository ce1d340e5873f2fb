// IdMap, the mirror's id-keyed store: the Map semantics the mirror relies on (get, set, has,
// delete, size, clear) over an array, iteration in ascending id order, and ids far beyond the
// array (a stray svc_id or backend_id read from the maps) held apart.
import t from 'tap';
import { IdMap } from '../../src/dataplane/id-map.js';

t.test('behaves as a Map from id to value over a seeded walk, iterating in ascending id order', async (t) => {
  const m = new IdMap<string>();
  const model = new Map<number, string>();
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  // Mostly small ids, sometimes one far beyond the array (up to 2^32 - 1).
  const anId = () => (next() % 10 === 0 ? 2 ** 17 + (next() % 1000) * 4_000_000 : next() % 64);
  for (let step = 0; step < 3000; step++) {
    const id = anId();
    if (next() % 3 === 0) t.equal(m.delete(id), model.delete(id));
    else {
      m.set(id, `v${step}`);
      model.set(id, `v${step}`);
    }
    const want = [...model].sort((a, b) => a[0] - b[0]);
    if (m.size !== model.size || JSON.stringify([...m]) !== JSON.stringify(want)) {
      t.fail(`step ${step}: ${JSON.stringify([...m])} != ${JSON.stringify(want)}`);
      return;
    }
  }
  for (let id = 0; id < 70; id++) {
    t.equal(m.get(id), model.get(id), `get(${id})`);
    t.equal(m.has(id), model.has(id), `has(${id})`);
  }
  const want = [...model].sort((a, b) => a[0] - b[0]);
  t.same([...m.keys()], want.map(([k]) => k));
  t.same([...m.values()], want.map(([, v]) => v));
  t.same([...m.entries()], want);
  m.clear();
  t.equal(m.size, 0);
  t.same([...m], []);
  t.equal(m.get(3), undefined);
});

t.test('set returns the map; delete of an absent id is false and changes nothing', async (t) => {
  const m = new IdMap<number>();
  t.equal(m.set(5, 50).set(4_000_000_000, 1), m);
  t.equal(m.size, 2);
  t.notOk(m.delete(6));
  t.notOk(m.delete(4_000_000_001));
  t.equal(m.size, 2);
  t.ok(m.delete(5));
  t.same([...m], [[4_000_000_000, 1]]);
});
