// BackendList, the model's packed endpoint sets: what goes in comes out (every field, every flag
// combination, in order, bad values as given), equality sees every field, and the object views
// (at, iteration, toArray, toJSON) agree with the indexed reads.
import t from 'tap';
import { BackendList } from '../../src/model/backend-list.js';
import type { Backend } from '../../src/model/types.js';

function backend(i: number): Backend {
  return {
    ip: `10.0.${i >> 8}.${i & 255}`,
    port: 8000 + i,
    nodeName: i % 3 === 0 ? null : `node-${i % 5}`,
    zone: i % 4 === 0 ? null : `zone-${i % 2}`,
    // All 16 combinations of the four flags over i = 0..15.
    local: (i & 1) !== 0,
    ready: (i & 2) !== 0,
    serving: (i & 4) !== 0,
    terminating: (i & 8) !== 0,
  };
}

const sixteen = Array.from({ length: 16 }, (_, i) => backend(i));

t.test('round trip: objects, indexed reads, iteration and JSON agree with the input', async (t) => {
  const list = BackendList.of(sixteen);
  t.equal(list.length, 16);
  t.same(list.toArray(), sixteen);
  t.same([...list], sixteen);
  t.same(JSON.parse(JSON.stringify({ list })), { list: sixteen });
  t.same(list.map((b, i) => `${i}:${b.ip}`), sixteen.map((b, i) => `${i}:${b.ip}`));
  sixteen.forEach((b, i) => {
    t.same(list.at(i), b, `at(${i})`);
    t.equal(list.ip(i), b.ip);
    t.equal(list.port(i), b.port);
    t.equal(list.nodeName(i), b.nodeName);
    t.equal(list.zone(i), b.zone);
    t.equal(list.local(i), b.local);
    t.equal(list.terminating(i), b.terminating);
  });
  for (const i of [-1, 16, 1.5]) t.equal(list.at(i), undefined, `at(${i})`);
  t.not(list.at(0), list.at(0), 'a new object each call: mutating one cannot change the list');
});

t.test('empty: one shared instance, nothing to read', async (t) => {
  t.equal(BackendList.of([]), BackendList.EMPTY);
  t.equal(BackendList.EMPTY.length, 0);
  t.same(BackendList.EMPTY.toArray(), []);
  t.same([...BackendList.EMPTY], []);
});

t.test('values are kept as given: the dataplane, not the list, rejects a bad one by its field', async (t) => {
  const bad = { ...backend(1), ip: 'nope', port: 70000 } as Backend;
  const list = BackendList.of([bad]);
  t.equal(list.ip(0), 'nope');
  t.equal(list.port(0), 70000);
  t.same(list.at(0), bad);
});

t.test('equals: same backends in the same order; any field of any backend differs', async (t) => {
  const a = BackendList.of(sixteen);
  t.ok(a.equals(a));
  t.ok(a.equals(BackendList.of(sixteen.map((b) => ({ ...b })))), 'equal content, other objects');
  t.notOk(a.equals(BackendList.of(sixteen.slice(1))), 'one fewer');
  t.notOk(a.equals(BackendList.of([...sixteen].reverse())), 'other order');
  const changes: Array<Partial<Backend>> = [
    { ip: '10.9.9.9' }, { port: 1 }, { nodeName: 'other' }, { zone: 'other' },
    { local: !sixteen[5]?.local }, { ready: !sixteen[5]?.ready }, { serving: !sixteen[5]?.serving }, { terminating: !sixteen[5]?.terminating },
  ];
  for (const change of changes) {
    const changed = sixteen.map((b, i) => (i === 5 ? { ...b, ...change } : b));
    t.notOk(a.equals(BackendList.of(changed)), `sees ${Object.keys(change)[0]}`);
    t.notOk(BackendList.of(changed).equals(a), 'symmetric');
  }
});
