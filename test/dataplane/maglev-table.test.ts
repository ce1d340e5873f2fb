// The Maglev table builder (src/dataplane/maglev-table.ts): preference lists are permutations of
// the slots, a table depends only on the identities and the size, every backend gets floor or
// ceil of size/N slots, and a backend change moves few slots beyond the minimum. All structural:
// deterministic inputs, no timing.
import t from 'tap';
import {
  backendIdentity, buildMaglevTable, maglevDisruption, maglevFlowHash, maglevPreferences, maglevSizeProblem, slotCounts,
} from '../../src/dataplane/maglev-table.js';

const ids = (n: number, port = 8080): string[] => Array.from({ length: n }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.7:${port}`).sort();

t.test('sizes: primes within bounds only, with a reason', async (t) => {
  t.equal(maglevSizeProblem(16381), undefined);
  t.equal(maglevSizeProblem(251), undefined);
  t.equal(maglevSizeProblem(65521), undefined);
  t.match(maglevSizeProblem(16383), /not a prime/);
  t.match(maglevSizeProblem(241), /outside 251-65521/);
  t.match(maglevSizeProblem(65537), /outside/);
  t.match(maglevSizeProblem(1021.5), /not an integer/);
  t.throws(() => buildMaglevTable(ids(3), 1000), /size 1000 is not a prime/);
  t.throws(() => buildMaglevTable([], 251), /at least one backend/);
  t.throws(() => buildMaglevTable(ids(252), 251), /252 backends do not fit/);
  t.throws(() => buildMaglevTable(['a:1', 'a:1'], 251), /distinct/);
});

t.test("each backend's preference list visits every slot exactly once (size prime, skip in [1, size))", async (t) => {
  for (const size of [251, 1021]) {
    for (const id of ids(20)) {
      const { offset, skip } = maglevPreferences(id, size);
      t.ok(offset >= 0 && offset < size && skip >= 1 && skip < size, `${id}: offset ${offset}, skip ${skip}`);
      const seen = new Uint8Array(size);
      for (let j = 0; j < size; j++) seen[(offset + j * skip) % size] = (seen[(offset + j * skip) % size] as number) + 1;
      t.ok(seen.every((c) => c === 1), `${id} @${size}: a permutation`);
    }
  }
  // Two hashes, independent: backends do not share one skip.
  const skips = new Set(ids(50).map((id) => maglevPreferences(id, 16381).skip));
  t.ok(skips.size > 45, `distinct skips: ${skips.size} of 50`);
});

t.test('the table fills in rounds along the preference lists (the paper, section 3.4)', async (t) => {
  // Replays the population: in each round, backend i takes the first slot of its list not yet
  // taken; the builder's table must be exactly that.
  const size = 251;
  const list = ids(7);
  const table = buildMaglevTable(list, size);
  const owner = new Int32Array(size).fill(-1);
  const next = new Array<number>(list.length).fill(0);
  let filled = 0;
  outer: for (;;) {
    for (let i = 0; i < list.length; i++) {
      const { offset, skip } = maglevPreferences(list[i] as string, size);
      let c = (offset + (next[i] as number) * skip) % size;
      while (owner[c] !== -1) {
        next[i] = (next[i] as number) + 1;
        c = (offset + (next[i] as number) * skip) % size;
      }
      owner[c] = i;
      next[i] = (next[i] as number) + 1;
      if (++filled === size) break outer;
    }
  }
  t.same([...table], [...owner]);
});

t.test('deterministic: the same identities and size give the same table', async (t) => {
  const a = buildMaglevTable(ids(30), 4093);
  const b = buildMaglevTable([...ids(30)], 4093);
  t.same([...a], [...b]);
  t.notSame([...buildMaglevTable(ids(30, 9090), 4093)], [...a], 'other identities, another table');
});

t.test('balance: every backend owns floor or ceil of size/N slots', async (t) => {
  for (const [n, size] of [[1, 251], [3, 251], [10, 16381], [100, 16381], [1000, 16381], [251, 251]] as const) {
    const counts = slotCounts(buildMaglevTable(ids(n), size), n);
    const lo = Math.floor(size / n);
    const hi = Math.ceil(size / n);
    t.ok(counts.every((c) => c === lo || c === hi), `N=${n} M=${size}: counts within [${lo}, ${hi}] (min ${Math.min(...counts)}, max ${Math.max(...counts)})`);
    t.equal(counts.reduce((a, b) => a + b, 0), size);
  }
});

t.test('disruption: a removed or added backend moves its own slots and few others', async (t) => {
  for (const [n, size, factor] of [[10, 16381, 1.2], [100, 16381, 3], [100, 1021, 6]] as const) {
    const before = ids(n);
    const table = buildMaglevTable(before, size);
    const removed = before.filter((_, i) => i !== n >> 1);
    const afterRemove = buildMaglevTable(removed, size);
    const rm = maglevDisruption({ table, identities: before }, { table: afterRemove, identities: removed });
    // Every slot the removed backend owned moved; slots of the others mostly stayed.
    t.ok(rm.minimum >= Math.floor(size / n) && rm.moved >= rm.minimum, `N=${n} M=${size} remove: moved ${rm.moved}, minimum ${rm.minimum}`);
    t.ok(rm.moved <= rm.minimum * factor, `remove: moved ${rm.moved} <= ${factor} x minimum ${rm.minimum}`);
    const added = [...before, '192.0.2.250:8080'].sort();
    const afterAdd = buildMaglevTable(added, size);
    const add = maglevDisruption({ table, identities: before }, { table: afterAdd, identities: added });
    t.ok(add.moved <= add.minimum * factor, `N=${n} M=${size} add: moved ${add.moved} <= ${factor} x minimum ${add.minimum}`);
    // Modulo hashing (hash % N) for comparison: most flows move.
    t.ok(rm.moved < size * 0.2, `far below modulo hashing's ~${Math.round((1 - 1 / n) * 100)}%`);
  }
});

t.test('the flow hash: deterministic, every input matters (test/datapath/external-maglev checks it against lib/maglev.h)', async (t) => {
  const h = maglevFlowHash('198.51.100.10', 40000, 6);
  t.equal(h, maglevFlowHash('198.51.100.10', 40000, 6));
  t.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  t.not(maglevFlowHash('198.51.100.11', 40000, 6), h);
  t.not(maglevFlowHash('198.51.100.10', 40001, 6), h);
  t.not(maglevFlowHash('198.51.100.10', 40000, 17), h);
  // Spread: 10,000 client ports over a 16381-slot table land on many slots.
  const slots = new Set(Array.from({ length: 10000 }, (_, p) => maglevFlowHash('198.51.100.10', 20000 + p, 6) % 16381));
  t.ok(slots.size > 7000, `${slots.size} distinct slots of 10000 flows`);
});

t.test('the IPv6 flow hash: every word of the address matters; IPv6 identities are bracketed', async (t) => {
  const h = maglevFlowHash('2001:db8::7', 40000, 6);
  t.equal(h, maglevFlowHash('2001:0db8:0::7', 40000, 6), 'the address, not its spelling');
  t.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32);
  for (const other of ['2001:db9::7', '2001:db8:0:1::7', '2001:db8::1:0:0:7', '2001:db8::8']) t.not(maglevFlowHash(other, 40000, 6), h, other);
  t.not(maglevFlowHash('2001:db8::7', 40001, 6), h);
  t.not(maglevFlowHash('2001:db8::7', 40000, 17), h);
  t.not(maglevFlowHash('::ffff:198.51.100.10', 40000, 6), maglevFlowHash('198.51.100.10', 40000, 6), 'an IPv4-mapped address is an IPv6 client');
  const slots = new Set(Array.from({ length: 10000 }, (_, p) => maglevFlowHash('2001:db8::7', 20000 + p, 6) % 16381));
  t.ok(slots.size > 7000, `${slots.size} distinct slots of 10000 flows`);
  t.equal(backendIdentity('fd00::1', 80), '[fd00::1]:80');
  t.equal(backendIdentity('10.0.0.1', 80), '10.0.0.1:80');
});
