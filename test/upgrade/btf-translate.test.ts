// Member-by-name translation between two BTF layouts (src/datapath/btf-translate.ts) and the
// codecs that follow an object's BTF (src/bpf/btf-codec.ts), on layouts written out by hand: the
// kernel-side runs are in migration.test.ts and upgrade.test.ts.
import t from 'tap';
import { codecFollowingBtf } from '../../src/bpf/btf-codec.js';
import type { BtfStruct } from '../../src/bpf/native.js';
import { ctValue4 } from '../../src/bpf/sluice-structs.js';
import { layoutDifferences, planMapTranslation, planTypeTranslation, translateElements, UntranslatableError } from '../../src/datapath/btf-translate.js';

const member = (name: string, offset: number, size: number) => ({ name, offset, size, bitfieldSize: 0 });
/** sl_ct_value4 as the regular build compiles it. */
const CT_OLD: BtfStruct = {
  name: 'sl_ct_value4', size: 40,
  members: [member('created_ns', 0, 8), member('last_seen_ns', 8, 8), member('nat_addr', 16, 4), member('nat_port', 20, 2), member('type', 22, 1),
    member('state', 23, 1), member('nat_saddr', 24, 4), member('svc_id', 28, 4), member('flags', 32, 4), member('nat_sport', 36, 2), member('pad', 38, 2)],
};
/** ... and as the SL_UPGRADE_TEST_LAYOUT build does: one __u64 more at the end. */
const CT_NEW: BtfStruct = { ...CT_OLD, size: 48, members: [...CT_OLD.members, member('upgrade_test', 40, 8)] };
/** A layout where members moved: svc_id first, a new member between. */
const CT_MOVED: BtfStruct = {
  name: 'sl_ct_value4', size: 48,
  members: [member('svc_id', 0, 4), member('zone', 4, 4), member('created_ns', 8, 8), member('last_seen_ns', 16, 8), member('nat_addr', 24, 4),
    member('nat_port', 28, 2), member('type', 30, 1), member('state', 31, 1), member('nat_saddr', 32, 4), member('flags', 36, 4), member('nat_sport', 40, 2), member('pad', 42, 6)],
};
const U32: BtfStruct = { name: '__u32', size: 4, members: [] };

const ctValue = { created_ns: 11n, last_seen_ns: 22n, nat_addr: '10.0.1.2', nat_port: 8080, type: 1, state: 2, nat_saddr: '10.0.0.9', svc_id: 7, flags: 1, nat_sport: 0 };

t.test('appending a member: everything is copied at the same offsets, the new member is zero', async (t) => {
  const plan = planTypeTranslation('ct value', CT_OLD, CT_NEW);
  t.equal(plan.identity, false);
  t.same(plan.added, ['upgrade_test']);
  t.same(plan.dropped, []);
  t.equal(plan.copies.length, 10, 'ten data members (padding is never copied)');
  const map = planMapTranslation('sl_ct4', { key: U32, value: CT_OLD }, { key: U32, value: CT_NEW }, false, 1);
  const keys = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]);
  const values = Buffer.concat([ctValue4.encode(ctValue), ctValue4.encode({ ...ctValue, svc_id: 8 })]);
  const out = translateElements(map, keys, values, 2);
  t.same(out.keys, keys, 'identical keys copied whole');
  t.equal(out.values.length, 96, 'two 48-byte values');
  const follow = codecFollowingBtf(ctValue4, CT_NEW);
  t.same(follow.codec.decode(out.values, 0), ctValue, 'first value decodes in the new layout to the same fields');
  t.same(follow.codec.decode(out.values, 48), { ...ctValue, svc_id: 8 }, 'second too');
  t.equal(out.values.readBigUInt64LE(40), 0n, 'the new member is zero');
});

t.test('removing a member (a rollback): the member is dropped, the rest carried', async (t) => {
  const newer = codecFollowingBtf(ctValue4, CT_NEW).codec;
  const src = newer.encode(ctValue);
  src.writeBigUInt64LE(0xdeadn, 40); // the member only the newer build knows
  const plan = planMapTranslation('sl_ct4', { key: U32, value: CT_NEW }, { key: U32, value: CT_OLD }, false, 1);
  t.same(plan.value.dropped, ['upgrade_test']);
  const out = translateElements(plan, Buffer.alloc(4), src, 1);
  t.same(ctValue4.decode(out.values), ctValue, 'the older layout gets every member it has');
});

t.test('moved members are found by name, not by offset', async (t) => {
  const plan = planTypeTranslation('ct value', CT_OLD, CT_MOVED);
  t.same(plan.added, ['zone']);
  const out = Buffer.alloc(48, 0xff);
  const { translateInto } = await import('../../src/datapath/btf-translate.js');
  translateInto(plan, ctValue4.encode(ctValue), 0, out, 0);
  t.equal(out.readUInt32LE(0), 7, 'svc_id moved to offset 0');
  t.equal(out.readUInt32LE(4), 0, 'the new member zone is zero (the buffer was 0xff)');
  t.equal(out.readBigUInt64LE(8), 11n, 'created_ns at its new offset');
  t.equal(out.readUInt16BE(28), 8080, 'nat_port at its new offset, bytes as they were (network order)');
  t.equal(out.readUInt32LE(36), 1, 'flags');
  t.ok(out.subarray(40, 48).equals(Buffer.alloc(8)), 'padding zeroed');
});

t.test('what cannot be translated says which member and why', async (t) => {
  const resized: BtfStruct = { ...CT_OLD, members: CT_OLD.members.map((m) => (m.name === 'svc_id' ? { ...m, size: 8 } : m)) };
  t.throws(() => planTypeTranslation('sl_ct4 value', CT_OLD, resized), new UntranslatableError('sl_ct4 value', 'member svc_id changed size from 4 to 8 bytes'));
  const bitfield: BtfStruct = { ...CT_OLD, members: CT_OLD.members.map((m) => (m.name === 'flags' ? { ...m, bitfieldSize: 3 } : m)) };
  t.throws(() => planTypeTranslation('v', CT_OLD, bitfield), /member flags is a bitfield/);
  t.throws(() => planTypeTranslation('k', U32, { name: '__u64', size: 8, members: [] }), /__u32 \(4 bytes\) became __u64 \(8 bytes\)/);
  t.throws(() => planTypeTranslation('k', null, U32), /no BTF for the old layout/);
  t.equal(planTypeTranslation('k', U32, U32).identity, true, 'the same scalar is copied whole');
});

t.test('per-CPU values: every CPU slot translated at the 8-byte stride', async (t) => {
  const OLD: BtfStruct = { name: 'c', size: 12, members: [member('a', 0, 4), member('b', 4, 4), member('c', 8, 4)] };
  const NEW: BtfStruct = { name: 'c', size: 8, members: [member('c', 0, 4), member('a', 4, 4)] };
  const plan = planMapTranslation('m', { key: U32, value: OLD }, { key: U32, value: NEW }, true, 2);
  t.equal(plan.fromValueBytes, 32, 'two CPUs of 16 bytes');
  t.equal(plan.toValueBytes, 16, 'two CPUs of 8 bytes');
  const v = Buffer.alloc(32);
  [1, 2, 3].forEach((x, i) => v.writeUInt32LE(x, i * 4));
  [4, 5, 6].forEach((x, i) => v.writeUInt32LE(x, 16 + i * 4));
  const out = translateElements(plan, Buffer.alloc(4), v, 1).values;
  t.same([out.readUInt32LE(0), out.readUInt32LE(4), out.readUInt32LE(8), out.readUInt32LE(12)], [3, 1, 6, 4]);
});

t.test('layout differences name both layouts; identical ones none', async (t) => {
  t.same(layoutDifferences('value', CT_OLD, CT_OLD), []);
  t.match(layoutDifferences('value', CT_OLD, CT_NEW)[0], /value: sl_ct_value4 \{.*pad@38:2\} 40B -> sl_ct_value4 \{.*upgrade_test@40:8\} 48B/);
});

t.test('a codec follows an object that grew members; a real drift still fails', async (t) => {
  t.equal(codecFollowingBtf(ctValue4, CT_OLD).codec, ctValue4, 'the declared codec itself when BTF agrees');
  const { codec, unknownMembers } = codecFollowingBtf(ctValue4, CT_MOVED);
  t.same(unknownMembers, ['zone']);
  t.equal(codec.size, 48);
  const bytes = codec.encode(ctValue);
  t.equal(bytes.readUInt32LE(0), 7, 'svc_id written at BTF\'s offset');
  t.same(codec.decode(bytes), ctValue, 'round trip');
  t.throws(() => codec.encode({ ...ctValue, svc_id: -1 }), /sl_ct_value4\.svc_id: cannot encode -1/, 'range checks of the declared codec still apply');
  const missing: BtfStruct = { ...CT_OLD, members: CT_OLD.members.filter((m) => m.name !== 'nat_saddr') };
  t.throws(() => codecFollowingBtf(ctValue4, missing), /disagrees with the BTF.*cannot follow it: member nat_saddr is missing/);
  const overlap: BtfStruct = { ...CT_OLD, members: CT_OLD.members.map((m) => (m.name === 'flags' ? { ...m, offset: 30 } : m)) };
  t.throws(() => codecFollowingBtf(ctValue4, overlap), /cannot follow it: members svc_id and flags overlap/);
});
