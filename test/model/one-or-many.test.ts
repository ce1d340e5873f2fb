// MultiIndex against a Map of Sets over a seeded walk: same keys, counts and values after every
// step; and the OneOrMany helpers it and the model's lists share.
import t from 'tap';
import { countOf, listOf, Many, MultiIndex, oneOrMany } from '../../src/model/one-or-many.js';
import { IdMap } from '../../src/dataplane/id-map.js';

t.test('MultiIndex behaves as a Map of Sets', async (t) => {
  const index = new MultiIndex<string, number>();
  const model = new Map<string, Set<number>>();
  let seed = 11;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let step = 0; step < 5000; step++) {
    const key = `k${next() % 8}`;
    const value = next() % 4;
    if (next() % 2 === 0) {
      index.add(key, value);
      let set = model.get(key);
      if (!set) model.set(key, (set = new Set()));
      set.add(value);
    } else {
      index.delete(key, value);
      model.get(key)?.delete(value);
      if (model.get(key)?.size === 0) model.delete(key);
    }
    const problems: string[] = [];
    if (index.size !== model.size) problems.push(`size ${index.size} vs ${model.size}`);
    for (let k = 0; k < 8; k++) {
      const name = `k${k}`;
      const want = [...(model.get(name) ?? [])].sort();
      if (JSON.stringify([...index.values(name)].sort()) !== JSON.stringify(want)) problems.push(`${name}: ${JSON.stringify(index.values(name))} vs ${JSON.stringify(want)}`);
      if (index.count(name) !== want.length || index.has(name) !== want.length > 0) problems.push(`${name}: count/has`);
    }
    if (problems.length > 0) {
      t.fail(`step ${step}: ${problems.join('; ')}`);
      return;
    }
  }
  t.same([...index.keys()].sort(), [...model.keys()].sort());
  index.clear();
  t.equal(index.size, 0);
  t.same(index.values('k1'), []);
});

t.test('adding a value twice keeps one; deleting an absent one changes nothing', async (t) => {
  const index = new MultiIndex<string, string>();
  index.add('a', 'x');
  index.add('a', 'x');
  t.equal(index.count('a'), 1);
  index.delete('a', 'y');
  index.delete('b', 'x');
  t.same(index.values('a'), ['x']);
  index.add('a', 'y');
  index.add('a', 'x');
  t.same(index.values('a'), ['x', 'y']);
  index.delete('a', 'x');
  t.same(index.values('a'), ['y'], 'back to a bare value');
  index.delete('a', 'y');
  t.notOk(index.has('a'));
});

t.test('values equal by `same` replace each other in place; an IdMap can hold the keys', async (t) => {
  interface Fe { id: string; n: number }
  const index = new MultiIndex<number, Fe>({ store: new IdMap(), same: (a, b) => a.id === b.id });
  index.add(3, { id: 'a', n: 1 });
  index.add(3, { id: 'a', n: 2 });
  t.same(index.values(3), [{ id: 'a', n: 2 }], 'a lone value replaced');
  index.add(3, { id: 'b', n: 1 });
  index.add(3, { id: 'a', n: 3 });
  t.same(index.values(3), [{ id: 'a', n: 3 }, { id: 'b', n: 1 }], 'replaced in place, order kept');
  index.delete(3, { id: 'a', n: 0 });
  t.same(index.values(3), [{ id: 'b', n: 1 }]);
  t.same([...index.keys()], [3]);
  index.delete(3, { id: 'b', n: 0 });
  t.equal(index.size, 0);
});

t.test('a lone value is bare, two or more a Many, whatever the value type', async (t) => {
  t.equal(oneOrMany([]), undefined);
  t.equal(oneOrMany(['x']), 'x');
  const items = ['x', 'y'];
  const many = oneOrMany(items);
  t.ok(many instanceof Many, 'two values: a Many');
  t.not((many as Many<string>).items, items, 'of a copy');
  t.same(listOf(many), ['x', 'y']);
  const arrays = oneOrMany([['a', 'b']]);
  t.same(arrays, ['a', 'b'], 'a lone array value is held bare too');
  t.equal(countOf(arrays), 1, 'and counts as one value');
  t.same(listOf<string[]>(arrays), [['a', 'b']]);
  t.equal(countOf(undefined), 0);
  t.same(listOf(undefined), []);
});
