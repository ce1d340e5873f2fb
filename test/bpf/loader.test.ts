// openBpfObject: codec drift caught before load, rodata from numbers, map sizes, and libbpf's
// messages forwarded to pino, on success and on a verifier rejection.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from 'pino';
import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { be16, be32, defineStruct, pad, u16, u32, u64, u8 } from '../../src/bpf/codec.js';
import { isNativeError } from '../../src/bpf/errors.js';
import { encodeRodataValue, openBpfObject } from '../../src/bpf/loader.js';
import { addon, FIXTURE_OBJ, frame, newRun, REJECT_OBJ } from './fixture.js';

interface Entry {
  level: number;
  msg: string;
  component?: string;
  source?: string;
  libbpfLevel?: string;
  object?: string;
  verifierLog?: string;
}

function capture(): { logger: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) entries.push(JSON.parse(line) as Entry);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), entries };
}

const LEVEL = { debug: 20, warn: 40, error: 50 };
const flush = () => new Promise((r) => setImmediate(r));

const pairCodec = defineStruct('fixture_pair', { addr: be32, port: be16, proto: u8, pad: pad(1), value: u64 });

t.test('loads with rodata numbers and map sizes; libbpf debug lines reach pino', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const { logger, entries } = capture();
  const obj = await openBpfObject(FIXTURE_OBJ, {
    addon: addon(),
    pinRoot: (await newRun(t)).pinDir,
    rodata: { fixture_retval: 99, fixture_mark: 0x33 },
    maxEntries: { fixture_lru: 256 },
    codecs: [pairCodec],
    logger,
  });
  t.teardown(() => obj.close());
  t.equal(obj.program('fixture_retval_prog').testRun({ data: frame() }).retval, 99);
  t.equal(obj.program('fixture_rewrite').testRun({ data: frame() }).data[14], 0x33);
  t.equal(obj.map('fixture_lru').info.maxEntries, 256);
  await flush();
  const libbpf = entries.filter((e) => e.source === 'libbpf');
  t.ok(libbpf.some((e) => e.level === LEVEL.debug && /^libbpf: /.test(e.msg)), 'debug lines forwarded');
  t.ok(libbpf.every((e) => e.libbpfLevel !== undefined && e.object === FIXTURE_OBJ), 'each with libbpf\'s level and the object');
});

t.test('a verifier rejection: the error carries the log; libbpf warnings and the log go to pino', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const { logger, entries } = capture();
  const err: unknown = await openBpfObject(REJECT_OBJ, { addon: addon(), logger }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isNativeError(err) && /invalid access to packet/.test(err.verifierLog ?? ''), 'rejected with the verifier log');
  await flush();
  t.ok(entries.some((e) => e.level === LEVEL.warn && /reject_unchecked/.test(e.msg)), 'libbpf warnings at warn');
  const logged = entries.find((e) => e.level === LEVEL.error);
  t.match(logged?.verifierLog, /invalid access to packet/, 'verifier log at error');
});

t.test('codec drift fails before anything is loaded', async (t) => {
  const drifted = defineStruct('fixture_pair', { addr: be32, port: u16, proto: u8, flags: u8, value: u64 });
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), codecs: [drifted] }), /fixture_pair.*member #3 is pad in C but flags/);
  const shrunk = defineStruct('fixture_pair', { addr: be32, port: be16, proto: u8, pad: pad(1), value: u32, tail: u32 });
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), codecs: [shrunk] }), /value: C has offset 8 size 8/);
  const missing = defineStruct('no_such_struct', { a: u32 });
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), codecs: [missing] }), /no_such_struct: struct not found/);
});

t.test('unknown rodata names and unfit values are refused with the names available', async (t) => {
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), rodata: { fixture_retvl: 1 } }), /'fixture_retvl' \(has: fixture_retval, fixture_mark\)/);
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), rodata: { fixture_mark: 256 } }), /fixture_mark.*256 does not fit/);
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), rodata: { fixture_retval: Buffer.alloc(8) } }), { code: 'EINVAL' });
  await t.rejects(openBpfObject(FIXTURE_OBJ, { addon: addon(), maxEntries: { nope: 4 } }), { code: 'ENOENT', message: /nope/ });
});

t.test('encodeRodataValue: little-endian integers of the variable size', async (t) => {
  const v = (size: number) => ({ name: 'x', section: '.rodata', offset: 0, size });
  t.same(encodeRodataValue(v(4), 0x01020304), Buffer.from([4, 3, 2, 1]));
  t.same(encodeRodataValue(v(2), 0xbeef), Buffer.from([0xef, 0xbe]));
  t.same(encodeRodataValue(v(1), true), Buffer.from([1]));
  t.same(encodeRodataValue(v(8), 1n << 63n), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x80]));
  t.same(encodeRodataValue(v(4), -1), Buffer.from([0xff, 0xff, 0xff, 0xff]), 'signed values in two\'s complement');
  t.throws(() => encodeRodataValue(v(2), 0x10000), /does not fit/);
  t.throws(() => encodeRodataValue(v(4), 1.5), /not an integer/);
  t.throws(() => encodeRodataValue(v(3), 1), /pass a Buffer/);
  const raw = Buffer.from([9, 9, 9]);
  t.equal(encodeRodataValue(v(3), raw), raw, 'Buffers pass through');
});
