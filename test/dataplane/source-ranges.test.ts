// SourceRangeWriter (src/dataplane/source-ranges.ts): each family's ranges into its own trie
// (sl_src_ranges4, sl_src_ranges6), keyed {32 + prefix length, svc_id, address}; new entries
// before stale ones go; a bad entry is reported (Service, field, value) and skipped while the
// port's other ranges are written. The programs' use of the tries is proven on host.bpf.o in
// test/datapath/external-policy.test.ts and test/datapath/ipv6-external-local.test.ts.
import t from 'tap';
import type { NativeMap } from '../../src/bpf/native.js';
import { srcRangeKey4, srcRangeKey6 } from '../../src/bpf/sluice-structs.js';
import { SourceRangeWriter, sourceRangeKey } from '../../src/dataplane/source-ranges.js';
import { desired, svcPort } from './helpers.js';

/** An LPM trie's keys in memory, with the order of the writes (a NativeMap as the writer uses one). */
function memoryTrie(decode: (k: Buffer) => { prefixlen: number; svc_id: number; addr: string }) {
  const m = new Map<string, Buffer>();
  const ops: string[] = [];
  const text = (k: Buffer) => {
    const d = decode(k);
    return `${d.svc_id} ${d.addr}/${d.prefixlen - 32}`;
  };
  const map = {
    update: (k: Buffer) => {
      ops.push(`+${text(k)}`);
      m.set(k.toString('hex'), k);
    },
    delete: (k: Buffer) => {
      ops.push(`-${text(k)}`);
      return m.delete(k.toString('hex'));
    },
    keys: () => [...m.values()],
  };
  return { map: map as unknown as NativeMap, ops, entries: () => [...m.values()].map(text).sort() };
}

const v6 = (name: string, sourceRanges: string[]) => svcPort({ name, family: 'IPv6', sourceRanges });
const v4 = (name: string, sourceRanges: string[]) => svcPort({ name, family: 'IPv4', sourceRanges });
const ids = new Map([['default/a:/TCP/IPv4', 1], ['default/a:/TCP/IPv6', 2], ['default/b:/TCP/IPv6', 3]]);

t.test("each family's ranges go to its own trie, keyed as lib/src_ranges.h looks them up", async (t) => {
  const t4 = memoryTrie((k) => srcRangeKey4.decode(k));
  const t6 = memoryTrie((k) => srcRangeKey6.decode(k));
  const w = new SourceRangeWriter({ IPv4: t4.map, IPv6: t6.map }, (k) => ids.get(k));
  const r = w.apply(desired(v4('a', ['10.0.0.0/8']), v6('a', ['2001:db8::/32', '2001:db8:5::7/128']), v6('b', ['::/0'])));
  t.same(r, { written: 4, deleted: 0, errors: [] });
  t.same(t4.entries(), ['1 10.0.0.0/8']);
  t.same(t6.entries(), ['2 2001:db8:5::7/128', '2 2001:db8::/32', '3 ::/0']);
  t.same(srcRangeKey6.decode(sourceRangeKey('IPv6', 2, '2001:db8::/32') as Buffer), { prefixlen: 64, svc_id: 2, addr: '2001:db8::' }, 'prefixlen counts the svc_id');
  t.equal((sourceRangeKey('IPv6', 2, '2001:db8::/32') as Buffer).length, 24);

  // A change: the new range is written before the stale ones go.
  t4.ops.length = 0;
  t6.ops.length = 0;
  const again = w.apply(desired(v4('a', ['10.0.0.0/8']), v6('a', ['2001:db8:9::/48'])));
  t.same(again, { written: 1, deleted: 3, errors: [] });
  t.same(t6.ops[0], '+2 2001:db8:9::/48', 'new first');
  t.same(t6.ops.slice(1).sort(), ['-2 2001:db8:5::7/128', '-2 2001:db8::/32', '-3 ::/0']);
  t.same(t4.ops, [], 'the IPv4 trie untouched');
  t.same(w.apply(desired(v4('a', ['10.0.0.0/8']), v6('a', ['2001:db8:9::/48']))), { written: 0, deleted: 0, errors: [] }, 'nothing to do');
});

t.test("a previous agent's entries are known: the first apply deletes the stale ones", async (t) => {
  const t4 = memoryTrie((k) => srcRangeKey4.decode(k));
  const t6 = memoryTrie((k) => srcRangeKey6.decode(k));
  t6.map.update(sourceRangeKey('IPv6', 2, 'fd00::/8') as Buffer, Buffer.alloc(4));
  t6.map.update(sourceRangeKey('IPv6', 9, 'fd00::/8') as Buffer, Buffer.alloc(4));
  const r = new SourceRangeWriter({ IPv4: t4.map, IPv6: t6.map }, (k) => ids.get(k)).apply(desired(v6('a', ['fd00::/8'])));
  t.same(r, { written: 0, deleted: 1, errors: [] });
  t.same(t6.entries(), ['2 fd00::/8']);
});

t.test('a bad entry is reported with Service, field and value and skipped; the other ranges apply', async (t) => {
  const t4 = memoryTrie((k) => srcRangeKey4.decode(k));
  const t6 = memoryTrie((k) => srcRangeKey6.decode(k));
  const w = new SourceRangeWriter({ IPv4: t4.map, IPv6: t6.map }, (k) => ids.get(k));
  const r = w.apply(desired(v6('a', ['2001:db8::/129', '10.0.0.0/8', '2001:db8:1::/48']), v6('b', ['fd00::/8'])));
  t.equal(r.written, 2);
  t.match(r.errors, [
    /^Service default\/a \(default\/a:\/TCP\/IPv6\): spec\.loadBalancerSourceRanges\[0\] "2001:db8::\/129" is not a valid CIDR; skipped, the other ranges apply$/,
    /spec\.loadBalancerSourceRanges\[1\] "10\.0\.0\.0\/8" is not an IPv6 CIDR/,
  ]);
  t.same(t6.entries(), ['2 2001:db8:1::/48', '3 fd00::/8'], 'svc a keeps its good range (narrower, never open); svc b untouched');
  t.same(t4.entries(), [], 'an IPv4 range on the IPv6 port never lands in the IPv4 trie');
});

t.test('without an IPv6 trie IPv6 ports are left alone; a full trie names its capacity', async (t) => {
  const t4 = memoryTrie((k) => srcRangeKey4.decode(k));
  const only4 = new SourceRangeWriter({ IPv4: t4.map }, (k) => ids.get(k));
  t.same(only4.apply(desired(v4('a', ['10.0.0.0/8']), v6('a', ['fd00::/8']))), { written: 1, deleted: 0, errors: [] });
  const t6 = memoryTrie((k) => srcRangeKey6.decode(k));
  const full = { ...t6.map, keys: () => [], update: () => { throw Object.assign(new Error('bpf_map_update_elem: No space left on device'), { code: 'ENOSPC' }); } } as unknown as NativeMap;
  const r = new SourceRangeWriter({ IPv4: t4.map, IPv6: full }, (k) => ids.get(k)).apply(desired(v6('a', ['fd00::/8'])));
  t.match(r.errors, [/^sl_src_ranges6 update: .*No space left on device \(sl_src_ranges6 holds 16384 ranges of all services\)$/]);
});
