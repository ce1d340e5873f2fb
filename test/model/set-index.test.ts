// SetIndex against a Map of Sets over a seeded walk: same keys, counts and values after every step.
import t from 'tap';
import { SetIndex } from '../../src/model/set-index.js';

t.test('SetIndex behaves as a Map of Sets', async (t) => {
  const index = new SetIndex<string, number>();
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
      if (JSON.stringify(index.values(name).sort()) !== JSON.stringify(want)) problems.push(`${name}: ${JSON.stringify(index.values(name))} vs ${JSON.stringify(want)}`);
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
  const index = new SetIndex<string, string>();
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
