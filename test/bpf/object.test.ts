// BPF objects through the native addon on the real kernel: open, rodata, load, enumeration,
// BTF introspection, verifier rejection and libbpf log capture.
import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { isNativeError } from '../../src/bpf/errors.js';
import { MapType, ProgType } from '../../src/bpf/map-types.js';
import { addon, FIXTURE_OBJ, frame, loadFixture, newRun, REJECT_OBJ, u32 } from './fixture.js';

t.test('libbpf version and CPUs', async (t) => {
  const native = addon();
  t.match(native.libbpfVersion(), /^1\.\d+$/);
  t.ok(native.numPossibleCpus() >= 1);
});

t.test('a rodata constant set before load changes what the program returns', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const dflt = await loadFixture(t);
  t.equal(dflt.program('fixture_retval_prog').testRun({ data: frame() }).retval, 7, 'compiled-in default');
  const obj = await loadFixture(t, { rodata: { fixture_retval: u32(0x1234) } });
  t.equal(obj.program('fixture_retval_prog').testRun({ data: frame() }).retval, 0x1234);
});

t.test('rodata variables come from BTF; bad names and sizes are clear errors', async (t) => {
  const obj = addon().openObject(FIXTURE_OBJ);
  t.teardown(() => obj.close());
  t.same(
    obj.rodataVariables().map((v) => [v.name, v.section, v.size]),
    [['fixture_retval', '.rodata', 4], ['fixture_mark', '.rodata', 1]],
  );
  t.throws(() => obj.setRodata('fixture_retval', Buffer.alloc(2)), {
    code: 'EINVAL',
    message: /fixture_retval.*4 bytes.*2 bytes/,
  });
  t.throws(() => obj.setRodata('no_such_var', Buffer.alloc(4)), { code: 'ENOENT', message: /no_such_var/ });
  t.throws(() => obj.setRodata('fixture_retval', 'x' as unknown as Buffer), { code: 'EINVAL', message: /Buffer/ });
});

t.test('maps and programs are enumerated with kernel ids after load', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const obj = native.openObject(FIXTURE_OBJ, { pinRoot: (await newRun(t)).pinDir });
  t.teardown(() => obj.close());
  const before = obj.maps().find((m) => m.name === 'fixture_lru');
  t.match(before, { type: MapType.LRU_HASH, keySize: 4, valueSize: 8, maxEntries: 64, id: 0, fd: -1 });
  t.throws(() => obj.map('fixture_lru'), { code: 'EINVAL', message: /not loaded/ });
  obj.setMaxEntries('fixture_lru', 128);
  await obj.load();
  t.throws(() => obj.setMaxEntries('fixture_lru', 256), { code: 'EBUSY' });
  await t.rejects(obj.load(), { code: 'EBUSY' }, 'a second load is refused');

  const maps = obj.maps();
  t.same(
    maps.filter((m) => m.name.startsWith('fixture_')).map((m) => m.name).sort(),
    ['fixture_array', 'fixture_hash', 'fixture_lru', 'fixture_pairs', 'fixture_pcpu_array', 'fixture_pcpu_hash', 'fixture_pinned'],
  );
  t.ok(maps.some((m) => m.name.endsWith('.rodata')), 'internal .rodata map is listed');
  for (const m of maps) t.ok(m.id > 0 && m.fd >= 0, `${m.name} has an id and fd`);
  t.equal(obj.map('fixture_lru').info.maxEntries, 128, 'setMaxEntries reached the kernel');

  const progs = obj.programs();
  t.same(progs.map((p) => p.name).sort(), ['fixture_connect4', 'fixture_connect4_alt', 'fixture_retval_prog', 'fixture_rewrite']);
  t.match(progs.find((p) => p.name === 'fixture_rewrite'), { section: 'tc', type: ProgType.SCHED_CLS });
  t.match(progs.find((p) => p.name === 'fixture_connect4'), { section: 'cgroup/connect4', type: ProgType.CGROUP_SOCK_ADDR });
  const handle = obj.program('fixture_rewrite');
  t.equal(handle.info.id, progs.find((p) => p.name === 'fixture_rewrite')?.id);
  t.throws(() => obj.map('nope'), { code: 'ENOENT', message: /nope/ });
  t.throws(() => obj.program('nope'), { code: 'ENOENT', message: /nope/ });
});

t.test('handles outlive their object; close is idempotent', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const obj = addon().openObject(FIXTURE_OBJ, { pinRoot: (await newRun(t)).pinDir });
  await obj.load();
  const map = obj.map('fixture_hash');
  const prog = obj.program('fixture_retval_prog');
  obj.close();
  obj.close();
  t.throws(() => obj.maps(), { code: 'EBADF' });
  map.update(u32(1), Buffer.alloc(8, 1));
  t.same(map.lookup(u32(1)), Buffer.alloc(8, 1), 'map fd is our own duplicate');
  t.equal(prog.testRun({ data: frame() }).retval, 7, 'program fd is our own duplicate');
  map.close();
  map.close();
  t.throws(() => map.lookup(u32(1)), { code: 'EBADF', message: /closed/ });
  prog.close();
  prog.close();
  t.throws(() => prog.testRun({ data: frame() }), { code: 'EBADF', message: /fixture_retval_prog is closed/ }, 'a closed program handle says so');
  t.equal(prog.info.fd, -1, 'and holds no fd');
});

t.test('btfStruct resolves offsets and sizes through typedefs, bitfields and arrays', async (t) => {
  const obj = addon().openObject(FIXTURE_OBJ);
  t.teardown(() => obj.close());
  t.same(obj.btfStruct('fixture_layout'), {
    name: 'fixture_layout',
    size: 32,
    members: [
      { name: 'id', offset: 0, size: 4, bitfieldSize: 0 },
      { name: 'port', offset: 4, size: 2, bitfieldSize: 0 },
      { name: 'proto', offset: 6, size: 1, bitfieldSize: 0 },
      { name: 'kind', offset: 7, size: 1, bitfieldSize: 3 },
      { name: 'spare', offset: 7, size: 1, bitfieldSize: 5 },
      { name: 'counter', offset: 8, size: 8, bitfieldSize: 0 },
      { name: 'addr', offset: 16, size: 16, bitfieldSize: 0 },
    ],
  });
  t.equal(obj.btfStruct('no_such_struct'), null);
});

t.test('a verifier rejection carries the verifier log and names the program', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  native.drainLog();
  const obj = native.openObject(REJECT_OBJ);
  t.teardown(() => obj.close());
  const err: unknown = await obj.load().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isNativeError(err), 'rejects with a NativeError');
  if (!isNativeError(err)) return;
  t.equal(err.call, 'bpf_object__load');
  t.equal(err.code, 'EACCES');
  t.equal(err.errno, 13);
  t.equal(err.program, 'reject_unchecked');
  t.match(err.message, /bpf_object__load\(.*reject\.bpf\.o\): Permission denied.*reject_unchecked/);
  t.match(err.verifierLog, /invalid access to packet/);
  t.throws(() => obj.program('reject_unchecked'), { message: /not loaded/ }, 'a failed object hands out nothing');

  const log = native.drainLog();
  t.ok(log.some((l) => l.level === 'warn' && /reject_unchecked/.test(l.message)), 'libbpf warnings were captured');
  t.ok(log.some((l) => l.level === 'debug'), 'debug lines too');
  t.same(native.drainLog().filter((l) => /reject_unchecked/.test(l.message)), [], 'drainLog empties the buffer');
});

t.test('opening a missing or non-BPF file fails with the errno name', async (t) => {
  const native = addon();
  t.throws(() => native.openObject('/nonexistent/x.bpf.o'), { code: 'ENOENT', call: 'bpf_object__open_file' });
  t.throws(() => native.openObject('/etc/hostname'), { code: 'LIBBPF_FORMAT', message: /BPF object format invalid/ });
  t.throws(() => native.openObject(42 as unknown as string), { code: 'EINVAL', message: /path must be a string/ });
});
