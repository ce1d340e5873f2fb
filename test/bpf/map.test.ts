// Map operations through the native addon on real kernel maps: element CRUD, key iteration,
// batch ops, per-CPU value layout, pins (libbpf pin-by-name reuse and openPinnedMap), and the
// size checks that keep bad Buffers from ever reaching the kernel.
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { UpdateFlags } from '../../src/bpf/map-types.js';
import type { NativeMap } from '../../src/bpf/native.js';
import { createRunCgroup, removeCgroupTree } from '../../src/testbed/cgroup.js';
import { addon, loadFixture, newRun, u32, u64 } from './fixture.js';

const sortedKeys = (keys: Buffer[]): number[] => keys.map((k) => k.readUInt32LE()).sort((a, b) => a - b);

function crud(t: Test, map: NativeMap): void {
  t.equal(map.lookup(u32(5)), null, 'absent key reads as null');
  map.update(u32(5), u64(50));
  map.update(u32(6), u64(60), UpdateFlags.NOEXIST);
  t.same(map.lookup(u32(5)), u64(50));
  t.throws(() => map.update(u32(6), u64(61), UpdateFlags.NOEXIST), { code: 'EEXIST', call: 'bpf_map_update_elem' });
  t.throws(() => map.update(u32(7), u64(70), UpdateFlags.EXIST), { code: 'ENOENT' });
  map.update(u32(6), u64(66), UpdateFlags.EXIST);
  t.same(map.lookup(u32(6)), u64(66));
  t.same(sortedKeys(map.keys()), [5, 6]);
  const first = map.nextKey(null);
  t.ok(first !== null && [5, 6].includes(first.readUInt32LE()), 'nextKey(null) is the first key');
  t.equal(map.delete(u32(5)), true);
  t.equal(map.delete(u32(5)), false, 'second delete reports the key was gone');
  t.same(sortedKeys(map.keys()), [6]);
}

t.test('hash and LRU maps: CRUD and key iteration', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  for (const name of ['fixture_hash', 'fixture_lru']) {
    await t.test(name, async (t) => crud(t, obj.map(name)));
  }
});

t.test('LRU evicts instead of failing when full', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const lru = (await loadFixture(t)).map('fixture_lru');
  for (let i = 0; i < 500; i++) lru.update(u32(i), u64(i));
  const count = lru.keys().length;
  t.ok(count > 0 && count <= 64, `holds at most max_entries (${count})`);
  t.same(lru.lookup(u32(499)), u64(499), 'the newest entry survives');
});

t.test('array map: fixed slots, out-of-range keys, no deletes', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const array = (await loadFixture(t)).map('fixture_array');
  t.same(array.lookup(u32(3)), u64(0), 'slots exist and start zeroed');
  array.update(u32(3), u64(33));
  t.same(array.lookup(u32(3)), u64(33));
  t.equal(array.lookup(u32(8)), null, 'past max_entries');
  t.throws(() => array.update(u32(8), u64(1)), { code: 'E2BIG' });
  t.throws(() => array.delete(u32(3)), { code: 'EINVAL', call: 'bpf_map_delete_elem' });
  t.same(sortedKeys(array.keys()), [0, 1, 2, 3, 4, 5, 6, 7]);
});

t.test('batch ops on hash, LRU and array maps', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  const n = 3000; // more than one kernel chunk
  const keys = Buffer.alloc(n * 4);
  const values = Buffer.alloc(n * 8);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32LE(i * 7, i * 4);
    values.writeBigUInt64LE(BigInt(i) * 1000n, i * 8);
  }
  const hash = obj.map('fixture_hash');
  t.equal(hash.updateBatch(keys, values, n), n);
  t.same(hash.lookup(u32(7 * 1234)), u64(1234 * 1000));
  const all = hash.lookupBatch();
  t.equal(all.count, n);
  t.equal(all.keys.length, n * 4);
  const seen = new Map<number, bigint>();
  for (let i = 0; i < all.count; i++) seen.set(all.keys.readUInt32LE(i * 4), all.values.readBigUInt64LE(i * 8));
  t.equal(seen.size, n);
  t.equal(seen.get(7 * 2999), 2999n * 1000n);
  t.equal(hash.deleteBatch(keys.subarray(0, 1000 * 4), 1000), 1000);
  t.equal(hash.keys().length, n - 1000);
  t.equal(hash.lookup(u32(7 * 999)), null);
  t.throws(() => hash.updateBatch(keys, values, n, UpdateFlags.NOEXIST), { code: 'EINVAL', message: /flags must be 0/ });
  t.throws(() => hash.deleteBatch(keys.subarray(0, 8), 2), { code: 'ENOENT', processed: 0 });

  const lru = obj.map('fixture_lru');
  t.equal(lru.updateBatch(keys.subarray(0, 40), values.subarray(0, 80), 10), 10);
  t.equal(lru.lookupBatch().count, 10);
  t.equal(lru.deleteBatch(keys.subarray(0, 40), 10), 10);
  t.equal(lru.lookupBatch().count, 0);

  const array = obj.map('fixture_array');
  t.equal(array.updateBatch(Buffer.concat([u32(1), u32(6)]), Buffer.concat([u64(11), u64(66)]), 2), 2);
  const slots = array.lookupBatch();
  t.equal(slots.count, 8, 'every slot of an array');
  t.equal(slots.values.readBigUInt64LE(6 * 8), 66n);
  t.throws(() => array.deleteBatch(u32(1), 1), { code: 'ENOTSUPP', call: 'bpf_map_delete_batch' });
  t.equal(hash.updateBatch(Buffer.alloc(0), Buffer.alloc(0), 0), 0, 'empty batch is a no-op');
});

t.test('per-CPU maps take and return one 8-byte-aligned slot per possible CPU', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const cpus = native.numPossibleCpus();
  const obj = await loadFixture(t);
  const hash = obj.map('fixture_pcpu_hash'); // __u32 values: 8-byte stride
  t.equal(hash.info.valueSize, 4);
  const value = Buffer.alloc(8 * cpus);
  for (let cpu = 0; cpu < cpus; cpu++) value.writeUInt32LE(100 + cpu, cpu * 8);
  hash.update(u32(1), value);
  t.same(hash.lookup(u32(1)), value);
  t.throws(() => hash.update(u32(2), Buffer.alloc(4)), {
    code: 'EINVAL',
    message: new RegExp(`fixture_pcpu_hash: value is 4 bytes, expected ${8 * cpus}`),
  });
  t.equal(hash.updateBatch(Buffer.concat([u32(2), u32(3)]), Buffer.concat([value, value]), 2), 2);
  const batch = hash.lookupBatch();
  t.equal(batch.count, 3);
  t.equal(batch.values.length, 3 * 8 * cpus);
  t.equal(hash.delete(u32(1)), true, 'delete of a per-CPU element');
  t.equal(hash.lookup(u32(1)), null, 'gone on every CPU');
  t.equal(hash.deleteBatch(Buffer.concat([u32(2), u32(3)]), 2), 2, 'batch delete of per-CPU elements');
  t.equal(hash.lookupBatch().count, 0, 'the per-CPU hash is empty');

  const array = obj.map('fixture_pcpu_array');
  const slots = Buffer.alloc(8 * cpus);
  for (let cpu = 0; cpu < cpus; cpu++) slots.writeBigUInt64LE(BigInt(cpu + 1) << 32n, cpu * 8);
  array.update(u32(2), slots);
  t.same(array.lookup(u32(2)), slots);
  t.equal(array.lookupBatch().values.length, 4 * 8 * cpus);
});

t.test('wrong key/value sizes and types are clear EINVAL errors, never a crash', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const hash = (await loadFixture(t)).map('fixture_hash');
  t.throws(() => hash.lookup(Buffer.alloc(3)), {
    code: 'EINVAL',
    errno: 22,
    call: 'bpf_map_lookup_elem',
    message: 'bpf_map_lookup_elem: map fixture_hash: key is 3 bytes, expected 4',
  });
  t.throws(() => hash.update(u32(1), Buffer.alloc(9)), { code: 'EINVAL', message: /value is 9 bytes, expected 8/ });
  t.throws(() => hash.delete(Buffer.alloc(0)), { code: 'EINVAL', message: /key is 0 bytes/ });
  t.throws(() => hash.nextKey(Buffer.alloc(5)), { code: 'EINVAL' });
  t.throws(() => hash.lookup('abcd' as unknown as Buffer), { code: 'EINVAL', message: /key must be a Buffer/ });
  t.throws(() => hash.update(u32(1), u64(1), 99), { code: 'EINVAL', message: /flags/ });
  t.throws(() => hash.updateBatch(Buffer.alloc(8), Buffer.alloc(8), 2), { code: 'EINVAL', message: /values is 8 bytes, expected 16/ });
  t.throws(() => hash.deleteBatch(Buffer.alloc(8), 3), { code: 'EINVAL', message: /keys is 8 bytes, expected 12/ });
  t.throws(() => hash.updateBatch(Buffer.alloc(4), Buffer.alloc(8), -1), { code: 'EINVAL', message: /count/ });
});

t.test('pins: libbpf reuses a pinned-by-name map, openPinnedMap sees the same contents', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const { pinDir } = await newRun(t);
  const first = await loadFixture(t, { pinRoot: pinDir });
  const value = Buffer.alloc(32, 0x5a);
  first.map('fixture_pinned').update(u32(9), value);
  first.close();

  const second = await loadFixture(t, { pinRoot: pinDir });
  const reused = second.map('fixture_pinned');
  t.same(reused.lookup(u32(9)), value, 'a fresh object with the same pinRoot reuses the map');

  const opened = addon().openPinnedMap(join(pinDir, 'fixture_pinned'));
  t.teardown(() => opened.close());
  t.match(opened.info, { name: 'fixture_pinned', keySize: 4, valueSize: 32, maxEntries: 16, id: reused.info.id });
  t.same(opened.lookup(u32(9)), value);
  opened.update(u32(10), Buffer.alloc(32, 1));
  t.same(reused.lookup(u32(10)), Buffer.alloc(32, 1), 'writes through the pin are visible to the object');

  // Explicit pin/unpin of an unpinned map.
  const hash = second.map('fixture_hash');
  const path = join(pinDir, 'extra_hash');
  hash.pin(path);
  t.throws(() => hash.pin(path), { code: 'EEXIST', call: 'bpf_obj_pin' });
  const again = addon().openPinnedMap(path);
  t.equal(again.info.id, hash.info.id);
  again.close();
  hash.unpin(path);
  t.throws(() => addon().openPinnedMap(path), { code: 'ENOENT' });
});

t.test('openPinnedMap: missing path is ENOENT; a non-map pin is refused', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const { prefix, pinDir } = await newRun(t);
  t.throws(() => addon().openPinnedMap(join(pinDir, 'missing')), {
    code: 'ENOENT',
    errno: 2,
    call: 'bpf_obj_get',
    message: /bpf_obj_get\(.*missing\): No such file or directory/,
  });
  const obj = await loadFixture(t);
  const path = join(pinDir, 'a_link');
  const cgroup = await createRunCgroup(prefix);
  t.teardown(() => removeCgroupTree(cgroup));
  const link = obj.program('fixture_connect4').attachCgroup(cgroup);
  t.teardown(() => link.close());
  link.pin(path);
  t.throws(() => addon().openPinnedMap(path), { code: 'EINVAL', message: /not a pinned map/ });
  link.detach();
});
