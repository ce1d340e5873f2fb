// NativeProgram.runIterator on the real kernel: an iter/udp fixture (bpf/test/iter_fixture.bpf.c)
// that reports the UDP sockets it is shown. Every run happens inside this test's own network
// namespaces (never the machine's): with `netns`, or from a child process living in one.
// Checks which namespace a run walks, its errors, that it leaves no fd, thread or link behind,
// and that sockdestroy.bpf.o (the socket sweep) loads and runs.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import t from 'tap';
import type { Test } from 'tap';
import type { NativeObject } from '../../src/bpf/native.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { netnsPath, spawnInNetns } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';

const ITER_OBJ = fromPackageRoot('dist', 'bpf', 'test', 'iter_fixture.bpf.o');
const SOCKDESTROY_OBJ = fromPackageRoot('dist', 'bpf', 'sockdestroy.bpf.o');
const ADDON = fromPackageRoot('build', 'Release', 'sluice_native.node');
const AF_INET = 2;
const AF_INET6 = 10;
const TCP_ESTABLISHED = 1;

interface UdpSock {
  family: number;
  port: number;
  state: number;
}

/** The fixture's records: { u16 family, u16 local port, u32 state } each. */
function parse(buf: Buffer): UdpSock[] {
  const out: UdpSock[] = [];
  for (let i = 0; i + 8 <= buf.length; i += 8) out.push({ family: buf.readUInt16LE(i), port: buf.readUInt16LE(i + 2), state: buf.readUInt32LE(i + 4) });
  return out;
}

const ports = (socks: UdpSock[]) => socks.map((s) => s.port).sort((a, b) => a - b);

/** Runs `code` (CommonJS) with node inside `ns`; resolves with the child once it printed "ready". */
function nodeIn(run: TestbedRun, ns: string, code: string): Promise<{ child: ChildProcess; out: () => string }> {
  const child = run.own(spawnInNetns(ns, [process.execPath, '--input-type=commonjs', '-e', code]));
  let out = '';
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child in ${ns} not ready: ${err}`)), 10_000);
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve({ child, out: () => out });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!out.includes('ready')) reject(new Error(`child in ${ns} exited (${code}): ${err}`));
    });
  });
}

/** Holds UDP sockets in `ns`: one bound to `port` on loopback, and (optionally) a client connected to it. */
function holdSockets(run: TestbedRun, ns: string, family: 'udp4' | 'udp6', port: number, connect: boolean) {
  const host = family === 'udp4' ? '127.0.0.1' : '::1';
  return nodeIn(run, ns, `
    const dgram = require('node:dgram');
    const s = dgram.createSocket('${family}');
    s.bind(${port}, '${host}', () => {
      if (!${connect}) return console.log('ready');
      const c = dgram.createSocket('${family}');
      c.connect(${port}, '${host}', () => console.log('ready'));
    });`);
}

async function setup(t: Test) {
  if (!(await requirePrivileges(t))) return null;
  for (const path of [ITER_OBJ, SOCKDESTROY_OBJ]) if (!existsSync(path)) throw new Error(`${path} is missing: run \`npm run build:bpf\``);
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const obj: NativeObject = loadNative().openObject(ITER_OBJ);
  t.teardown(() => obj.close());
  await obj.load();
  return { run, obj, prog: obj.program('sl_iter_udp_ports') };
}

t.test('an iterator walks the sockets of the namespace it is created in', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const a = await s.run.netns('iter-a');
  const b = await s.run.netns('iter-b');
  const empty = await s.run.netns('iter-empty');
  await holdSockets(s.run, a, 'udp4', 40001, true);
  await holdSockets(s.run, b, 'udp6', 40002, false);

  // The link is created on this (main) thread, in the test process's namespace; only
  // bpf_iter_create and the reads run in the target namespace. What comes back is that
  // namespace's sockets: an iterator is bound when it is created, not when it is attached.
  const inA = parse(s.prog.runIterator({ netns: netnsPath(a) }));
  t.equal(inA.length, 2, 'namespace a: its bound socket and its connected client');
  t.ok(inA.some((x) => x.port === 40001 && x.family === AF_INET), 'the bound socket (40001)');
  t.ok(inA.some((x) => x.port !== 40001 && x.state === TCP_ESTABLISHED), 'the connected client (state ESTABLISHED)');
  t.same(parse(s.prog.runIterator({ netns: netnsPath(b) })), [{ family: AF_INET6, port: 40002, state: 7 }], 'namespace b: only its IPv6 socket');
  t.same(parse(s.prog.runIterator({ netns: netnsPath(empty) })), [], 'a namespace without sockets: nothing');
  t.same(ports(parse(s.prog.runIterator({ netns: netnsPath(a) }))), ports(inA), 'a second run sees the same');
});

t.test('without netns, the namespace of the calling process', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const ns = await s.run.netns('iter-own');
  // A child node process living in the test namespace runs the iterator without `netns`.
  const child = await nodeIn(s.run, ns, `
    const dgram = require('node:dgram');
    const addon = require(${JSON.stringify(ADDON)});
    const sock = dgram.createSocket('udp4');
    sock.bind(40003, '127.0.0.1', async () => {
      const obj = addon.openObject(${JSON.stringify(ITER_OBJ)});
      await obj.load();
      const out = obj.program('sl_iter_udp_ports').runIterator();
      obj.close();
      console.log('out=' + out.toString('hex') + ' ready');
    });`);
  const hex = /out=([0-9a-f]*) ready/.exec(child.out())?.[1] ?? '';
  t.same(parse(Buffer.from(hex, 'hex')), [{ family: AF_INET, port: 40003, state: 7 }], 'its own socket only');
});

t.test('errors are NativeErrors naming the call', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const ns = await s.run.netns('iter-err');
  const notIter = s.obj.program('sl_iter_not_an_iterator');
  t.throws(() => notIter.runIterator({ netns: netnsPath(ns) }), { code: 'EINVAL', call: 'bpf_iter_create', message: /sl_iter_not_an_iterator \(section tc\) is not an iterator/ });
  t.throws(() => s.prog.runIterator({ netns: `/run/netns/${s.run.prefix}-no-such-ns` }), { code: 'ENOENT', errno: 2, call: 'open' });
  t.throws(() => s.prog.runIterator({ netns: '/dev/null' }), { code: 'EINVAL', call: 'setns', message: /setns\(sl_iter_udp_ports in \/dev\/null\)/ });
  t.throws(() => s.prog.runIterator({ netns: '' }), { code: 'EINVAL', message: /netns must be a non-empty string/ });
  t.throws(() => s.prog.runIterator({ netns: 5 } as never), { code: 'EINVAL', message: /netns must be a string/ });
  t.throws(() => s.prog.runIterator(5 as never), { code: 'EINVAL' });
});

t.test('leaves no fd, thread or link behind', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const ns = netnsPath(await s.run.netns('iter-leak'));
  const fds = () => readdirSync('/proc/self/fd').length;
  const threads = () => readdirSync('/proc/self/task').length;
  const iterLinks = () => {
    const links = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show'], { encoding: 'utf8' }) || '[]') as { prog_id: number }[];
    return links.filter((l) => l.prog_id === s.prog.info.id).length;
  };
  s.prog.runIterator({ netns: ns });
  const before = { fds: fds(), threads: threads() };
  for (let i = 0; i < 200; i++) s.prog.runIterator({ netns: ns });
  for (let i = 0; i < 20; i++) t.throws(() => s.prog.runIterator({ netns: '/dev/null' }), { code: 'EINVAL', call: 'setns' });
  t.equal(fds(), before.fds, 'open fds unchanged after 200 runs and 20 failures');
  t.equal(threads(), before.threads, 'no thread left behind');
  t.equal(iterLinks(), 0, 'no iterator link of the program left');
});

t.test('sockdestroy.bpf.o (the UDP socket sweep) loads and runs in a namespace', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const ns = await s.run.netns('iter-sweep');
  await holdSockets(s.run, ns, 'udp4', 40004, true);
  const obj = loadNative().openObject(SOCKDESTROY_OBJ, { pinRoot: await s.run.pinDir() });
  t.teardown(() => obj.close());
  await obj.load();
  const out = obj.program('sl_sock_destroy_udp').runIterator({ netns: netnsPath(ns) });
  t.equal(out.length, 0, 'writes nothing');
  // No sl_sock_revnat4 entry: the connected socket is not ours and stays.
  t.equal(parse(s.prog.runIterator({ netns: netnsPath(ns) })).filter((x) => x.state === TCP_ESTABLISHED).length, 1, 'a connected socket it did not balance is left alone');
});
