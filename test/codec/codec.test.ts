import t from 'tap';
import {
  be16, be32, cstring, decodePerCpu, defineStruct, encodePerCpu, ipv4, ipv6, nested, pad, scalar, u16, u32, u64, u8,
  verifyCodecAgainstBtf,
} from '../../src/bpf/codec.js';
import type { BtfStruct } from '../../src/bpf/native.js';
import { ipv4ToBuffer } from '../../src/bpf/ip-bytes.js';

const key = defineStruct('demo_key', { addr: ipv4, port: be16, proto: u8, scope: u8 });

t.test('layout follows C natural alignment', async (t) => {
  t.equal(key.size, 8);
  t.same(key.members.map((m) => [m.name, m.offset, m.size]), [
    ['addr', 0, 4], ['port', 4, 2], ['proto', 6, 1], ['scope', 7, 1],
  ]);
  const withU64 = defineStruct('demo_ct', { a: u64, b: u32, c: pad(4, 4) });
  t.equal(withU64.size, 16);
  t.equal(withU64.align, 8);
});

t.test('encode and decode round-trip, network order where declared', async (t) => {
  const buf = key.encode({ addr: '10.96.0.10', port: 80, proto: 6, scope: 0 });
  t.same([...buf], [10, 96, 0, 10, 0, 80, 6, 0]);
  t.same(key.decode(buf), { addr: '10.96.0.10', port: 80, proto: 6, scope: 0 });
});

t.test('implicit padding is refused', async (t) => {
  t.throws(() => defineStruct('bad', { a: u8, b: u32 }), /implicit padding before offset 1/);
  t.throws(() => defineStruct('bad_tail', { a: u32, b: u8 }), /implicit tail padding/);
});

t.test('out-of-range values name the field', async (t) => {
  t.throws(() => key.encode({ addr: '10.0.0.1', port: 70000, proto: 6, scope: 0 }), /demo_key\.port/);
  t.throws(() => key.encode({ addr: 'nope', port: 1, proto: 6, scope: 0 }), /demo_key\.addr.*not an IPv4/);
  t.throws(() => key.decode(Buffer.alloc(3)), /need 8 bytes, got 3/);
});

t.test('ipv6, cstring, nested, scalar, u64', async (t) => {
  const s = defineStruct('demo6', {
    addr: ipv6, name: cstring(8), inner: nested(key), n: u64,
  });
  const v = { addr: '2001:db8::1', name: 'svc', inner: { addr: '1.2.3.4', port: 53, proto: 17, scope: 1 }, n: 5n };
  t.same(s.decode(s.encode(v)), v);
  t.equal(s.decode(s.encode({ ...v, addr: '::ffff:1.2.3.4' })).addr, '::ffff:102:304');
  t.throws(() => s.encode({ ...v, name: 'too-long-name' }), /does not fit char\[8\]/);
  const idx = scalar('__u32', u32);
  t.equal(idx.decode(idx.encode(7)), 7);
});

t.test('per-CPU values use an 8-byte stride', async (t) => {
  const c = scalar('__u32', u32);
  const buf = encodePerCpu(c, [1, 2, 3]);
  t.equal(buf.length, 24);
  t.same(decodePerCpu(c, buf, 3), [1, 2, 3]);
});

t.test('BTF verification names the drifting field', async (t) => {
  const good: BtfStruct = {
    name: 'demo_key', size: 8,
    members: [
      { name: 'addr', offset: 0, size: 4, bitfieldSize: 0 },
      { name: 'port', offset: 4, size: 2, bitfieldSize: 0 },
      { name: 'proto', offset: 6, size: 1, bitfieldSize: 0 },
      { name: 'scope', offset: 7, size: 1, bitfieldSize: 0 },
    ],
  };
  t.doesNotThrow(() => verifyCodecAgainstBtf(key, good));
  const moved = structuredClone(good);
  moved.members[1] = { name: 'port', offset: 4, size: 4, bitfieldSize: 0 };
  t.throws(() => verifyCodecAgainstBtf(key, moved), /field port: C has offset 4 size 4, codec has offset 4 size 2/);
  const renamed = structuredClone(good);
  renamed.members[2] = { name: 'protocol', offset: 6, size: 1, bitfieldSize: 0 };
  t.throws(() => verifyCodecAgainstBtf(key, renamed), /member #2 is protocol in C but proto in the codec/);
  const extra = structuredClone(good);
  extra.members.push({ name: 'flags', offset: 8, size: 4, bitfieldSize: 0 });
  extra.size = 12;
  t.throws(() => verifyCodecAgainstBtf(key, extra), /member flags .* exists in C but not in the codec/);
  t.throws(() => verifyCodecAgainstBtf(key, null), /not found in the object's BTF/);
});

t.test('IPv4 text is parsed strictly', async (t) => {
  t.same([...ipv4ToBuffer('255.0.10.1')], [255, 0, 10, 1]);
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1..3.4', '1.2.3.4.', 'a.b.c.d', ' 1.2.3.4', '1.2.3.4 ', '1234.1.1.1']) {
    t.throws(() => ipv4ToBuffer(bad), /not an IPv4 address/, JSON.stringify(bad));
  }
});

t.test('encoding into a used buffer: every byte of the struct is rewritten, padding zeroed', async (t) => {
  const { backendValue4, ctValue4 } = await import('../../src/bpf/sluice-structs.js');
  const dirty = Buffer.alloc(4 + backendValue4.size, 0xff);
  backendValue4.encode({ addr: '10.1.2.3', port: 8080, flags: 1, node_addr: '192.0.2.1' }, dirty, 4);
  t.same([...dirty.subarray(4)], [10, 1, 2, 3, 0x1f, 0x90, 1, 0, 192, 0, 2, 1], 'members written, the pad byte zeroed');
  t.equal(dirty[3], 0xff, 'bytes before the struct untouched');
  const ct = Buffer.alloc(ctValue4.size, 0xee);
  ctValue4.encode({ created_ns: 1n, last_seen_ns: 2n, nat_addr: '1.2.3.4', nat_port: 80, type: 1, state: 2, nat_saddr: '0.0.0.0', svc_id: 3, flags: 0, nat_sport: 0 }, ct);
  t.same([...ct.subarray(36, 40)], [0, 0, 0, 0], 'trailing padding zeroed');
  t.same(ctValue4.decode(ct), { created_ns: 1n, last_seen_ns: 2n, nat_addr: '1.2.3.4', nat_port: 80, type: 1, state: 2, nat_saddr: '0.0.0.0', svc_id: 3, flags: 0, nat_sport: 0 });
});

t.test('the compiled encoder refuses exactly what the member-by-member one refuses, naming the member', async (t) => {
  const s = defineStruct('all_ints', { a: u8, pad0: pad(1), b: u16, c: u32, d: be16, pad1: pad(2), e: be32 });
  const good = { a: 255, b: 65535, c: 2 ** 32 - 1, d: 443, e: 0x0a000001 };
  t.same([...s.encode(good)], [255, 0, 255, 255, 255, 255, 255, 255, 1, 187, 0, 0, 10, 0, 0, 1], 'every width and byte order');
  const bad: Array<[string, unknown]> = [['a', 256], ['a', -1], ['b', 1.5], ['c', '7'], ['c', 2 ** 32], ['d', NaN], ['e', null], ['e', undefined], ['b', 10n]];
  for (const [member, value] of bad) {
    t.throws(() => s.encode({ ...good, [member]: value } as never), new RegExp(`all_ints\\.${member}: cannot encode`), `${member} = ${String(value)} is refused, naming ${member}`);
  }
  // A string for a __u32 would be coerced by Buffer's writer ('7' → 7): the compiled path must not.
  t.throws(() => s.encode({ ...good, c: '7' } as never), /fit an unsigned 32-bit field/);
  t.throws(() => s.encode(good, Buffer.alloc(4)), /all_ints\./, 'a buffer too small is refused too');
});

