// BPF_PROG_TEST_RUN through the addon: return value, rewritten packet bytes, context in/out,
// per-run duration, and map side effects of repeated runs.
import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { frame, loadFixture, u32, u64 } from './fixture.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;

t.test('a TC program rewrites the packet; the output is the rewritten packet', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t, { rodata: { fixture_mark: Buffer.from([0x5c]) } });
  const input = frame(64);
  input.fill(0x11, 14);
  const out = obj.program('fixture_rewrite').testRun({ data: input });
  t.equal(out.retval, TC_ACT_OK);
  t.equal(out.data.length, 64, 'output sliced to the packet length');
  t.equal(out.data[14], 0x5c, 'byte 14 carries the rodata mark');
  t.same(out.data.subarray(0, 14), input.subarray(0, 14), 'Ethernet header untouched');
  t.same(out.data.subarray(15), input.subarray(15), 'the rest untouched');
  t.equal(input[14], 0x11, 'the input Buffer is not modified');
  t.equal(out.ctx, null, 'no ctx asked for, none returned');
});

t.test('the bounds check in the program is real: a 14-byte frame is dropped unmodified', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  // A non-IP ethertype: for IPv4/IPv6 frames the kernel itself wants the IP header present.
  const short = Buffer.alloc(14);
  short.writeUInt16BE(0x88b5, 12);
  const out = obj.program('fixture_rewrite').testRun({ data: short });
  t.equal(out.retval, TC_ACT_SHOT);
  t.same(out.data, short);
});

t.test('repeat runs the program N times (map side effect) and reports a per-run duration', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  const counters = obj.map('fixture_array');
  counters.update(u32(0), u64(0));
  const out = obj.program('fixture_rewrite').testRun({ data: frame(), repeat: 5000 });
  t.equal(out.retval, TC_ACT_OK);
  t.same(counters.lookup(u32(0)), u64(5000), 'fixture_array[0] counted every run');
  t.ok(Number.isInteger(out.durationNs) && out.durationNs > 0, `duration ${out.durationNs} ns per run`);
  t.ok(out.durationNs < 1_000_000, 'a per-run average, not a total');
});

t.test('context in and out (struct __sk_buff)', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = await loadFixture(t);
  const MARK_OFFSET = 8; // struct __sk_buff: len, pkt_type, mark, ...
  const WIRE_LEN_OFFSET = 160;
  const ctx = Buffer.alloc(40);
  ctx.writeUInt32LE(0xfeed, MARK_OFFSET);
  const out = obj.program('fixture_rewrite').testRun({ data: frame(100), ctx });
  t.ok(out.ctx, 'ctx returned');
  t.ok((out.ctx?.length ?? 0) > 40, `sliced to the kernel's struct size (${out.ctx?.length})`);
  t.equal(out.ctx?.readUInt32LE(MARK_OFFSET), 0xfeed, 'mark survives the round trip');
  t.equal(out.ctx?.readUInt32LE(WIRE_LEN_OFFSET), 100, 'the kernel filled in wire_len');
});

t.test('bad test-run input: clear errors from us or from the kernel', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const prog = (await loadFixture(t)).program('fixture_rewrite');
  t.throws(() => prog.testRun({ data: frame(), repeat: -1 }), { code: 'EINVAL', message: /repeat/ });
  t.throws(() => prog.testRun({ data: 'x' as unknown as Buffer }), { code: 'EINVAL', message: /data must be a Buffer/ });
  t.throws(() => prog.testRun({ data: Buffer.alloc(4) }), { code: 'EINVAL', call: 'bpf_prog_test_run_opts' }, 'shorter than an Ethernet header');
  t.throws(() => prog.testRun({ data: frame(64), dataSizeOut: 10 }), { code: 'ENOSPC' }, 'output buffer too small');
  t.throws(() => prog.testRun({ data: frame(64), ctx: Buffer.alloc(40), ctxSizeOut: 40 }), { code: 'ENOSPC' }, 'ctx out too small');
});
