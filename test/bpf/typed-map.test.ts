// TypedMap on real kernel maps: codecs in and out, batch ops for bulk work (10k entries), the
// element-op fallback, per-CPU values, and refusal of codecs that do not fit the map.
import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { be16, defineStruct, ipv6, scalar, u32 as u32Field, u64 as u64Field, u8 } from '../../src/bpf/codec.js';
import type { NativeError, NativeMap } from '../../src/bpf/native.js';
import { perCpuCodec } from '../../src/bpf/per-cpu.js';
import { TypedMap } from '../../src/bpf/typed-map.js';
import { addon, loadFixture } from './fixture.js';

const u32Key = scalar('__u32', u32Field);
const u64Value = scalar('__u64', u64Field);
const u32Value = scalar('__u32', u32Field);
const layout = defineStruct('fixture_layout', {
  id: u32Field,
  port: be16,
  proto: u8,
  bits: u8,
  counter: u64Field,
  addr: ipv6,
});

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

t.test('bulk set/read/delete of 10k entries goes through batch ops', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const map = new TypedMap((await loadFixture(t)).map('fixture_hash'), u32Key, u64Value, { chunkSize: 3000 });
  const n = 10_000;
  t.equal(map.setMany(range(n).map((i) => [i, BigInt(i) * 3n] as const)), n);
  t.equal(map.get(9_999), 29_997n);
  const entries = map.entries();
  t.equal(entries.length, n);
  t.same(new Map(entries).get(1234), 3702n);

  // Delete every even key plus 100 keys that never existed, interleaved.
  const doomed = range(n / 2).map((i) => i * 2);
  const withMissing = doomed.flatMap((k, i) => (i % 50 === 0 ? [k, 1_000_000 + i] : [k]));
  t.equal(map.deleteMany(withMissing), n / 2, 'missing keys are skipped, not fatal');
  const left = map.keys().sort((a, b) => a - b);
  t.equal(left.length, n / 2);
  t.ok(left.every((k) => k % 2 === 1), 'only odd keys remain');
  t.same(map.batchSupport(), { lookup: 'yes', update: 'yes', delete: 'yes' });

  t.equal(map.clear(), n / 2);
  t.same(map.entries(), []);
});

t.test('single-element get/set/delete with a struct codec', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const map = new TypedMap((await loadFixture(t)).map('fixture_pinned'), u32Key, layout);
  const value = { id: 7, port: 8080, proto: 6, bits: 5, counter: 1n << 40n, addr: 'fd00::1' };
  t.equal(map.get(1), null);
  map.set(1, value);
  t.same(map.get(1), value);
  t.same(map.entries(), [[1, value]]);
  t.equal(map.delete(1), true);
  t.equal(map.delete(1), false);
});

/** The real map, but its batch commands fail the way an old kernel or batch-less type does. */
function withoutBatch(map: NativeMap, calls: string[]): NativeMap {
  const unsupported = (call: string) => () => {
    calls.push(call);
    const err = new Error(`${call}(${map.info.name}): Operation not supported`) as NativeError;
    Object.assign(err, { code: 'ENOTSUPP', errno: 524, call });
    throw err;
  };
  return {
    get info() {
      return map.info;
    },
    lookup: (k) => map.lookup(k),
    update: (k, v, f) => map.update(k, v, f),
    delete: (k) => map.delete(k),
    nextKey: (k) => map.nextKey(k),
    keys: () => map.keys(),
    lookupBatch: unsupported('bpf_map_lookup_batch'),
    updateBatch: unsupported('bpf_map_update_batch'),
    deleteBatch: unsupported('bpf_map_delete_batch'),
    pin: (p) => map.pin(p),
    unpin: (p) => map.unpin(p),
    close: () => map.close(),
    btfLayout: () => map.btfLayout(),
  };
}

t.test('without batch support, bulk ops fall back to element ops (and stop trying batches)', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const real = (await loadFixture(t)).map('fixture_hash');
  const calls: string[] = [];
  const map = new TypedMap(withoutBatch(real, calls), u32Key, u64Value, { chunkSize: 100 });
  t.equal(map.setMany(range(1000).map((i) => [i, BigInt(i)] as const)), 1000);
  t.equal(real.keys().length, 1000, 'the kernel map really holds them');
  t.equal(map.entries().length, 1000);
  t.equal(map.deleteMany([...range(500), 5000]), 500);
  t.equal(real.keys().length, 500);
  t.same(map.batchSupport(), { lookup: 'no', update: 'no', delete: 'no' });
  t.same(calls, ['bpf_map_update_batch', 'bpf_map_lookup_batch', 'bpf_map_delete_batch'], 'each batch op tried once');
});

t.test('a real ENOTSUPP from the kernel (array delete batch) triggers the fallback', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const map = new TypedMap((await loadFixture(t)).map('fixture_array'), u32Key, u64Value);
  t.equal(map.setMany([[1, 10n], [2, 20n]]), 2);
  t.equal(map.entries().length, 8, 'arrays list every slot');
  // Array slots cannot be deleted at all: after the batch refusal, the element op says so.
  t.throws(() => map.deleteMany([1]), { code: 'EINVAL', call: 'bpf_map_delete_elem' });
  t.equal(map.batchSupport().delete, 'no');
});

t.test('per-CPU maps: values are one entry per possible CPU', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const cpus = addon().numPossibleCpus();
  const obj = await loadFixture(t);
  const map = new TypedMap(obj.map('fixture_pcpu_hash'), u32Key, perCpuCodec(u32Value, cpus));
  const perCpu = range(cpus, 100);
  map.set(1, perCpu);
  t.same(map.get(1), perCpu);
  t.equal(map.setMany([[2, perCpu], [3, perCpu]]), 2);
  t.same(new Map(map.entries()).get(3), perCpu);
  t.throws(() => map.set(4, [1]), /needs \d+ entries, got 1/);
});

t.test('codecs that do not fit the map are refused up front', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  const hash = obj.map('fixture_hash');
  t.throws(() => new TypedMap(hash, u64Value, u64Value), /key codec __u64 is 8 bytes, the map's keys are 4/);
  t.throws(() => new TypedMap(hash, u32Key, u32Value), /value codec __u32 is 4 bytes, the map's values are 8/);
  t.throws(() => new TypedMap(obj.map('fixture_pcpu_hash'), u32Key, u32Value), /PERCPU_HASH needs a per-CPU value codec/);
  t.throws(() => new TypedMap(hash, u32Key, perCpuCodec(u64Value, 2)), /HASH must not use a per-CPU value codec/);
  t.throws(() => new TypedMap(hash, u32Key, u64Value, { chunkSize: 0 }), /chunkSize/);
});
