// Attachment self-checks for the addon, all inside things this test creates: TC filters on a
// veth inside a throwaway network namespace (through the `netns` option), and cgroup
// connect4 links on a per-run cgroup, exercised by real connect() calls from a process inside it.
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import type { NativeLink } from '../../src/bpf/native.js';
import { cgroupArgv, createRunCgroup, removeCgroupTree } from '../../src/testbed/cgroup.js';
import { run } from '../../src/testbed/exec.js';
import { netnsName } from '../../src/testbed/names.js';
import { createNetns, deleteNetns, ifindexIn, ipIn, netnsPath } from '../../src/testbed/netns.js';
import { addon, loadFixture, newRun, u32, u64 } from './fixture.js';

t.test('TC: hook, attach, query, replace, detach in a test namespace', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const { prefix } = await newRun(t);
  const ns = netnsName(prefix, 'tc');
  await createNetns(ns);
  t.teardown(() => deleteNetns(ns));
  await ipIn(ns, ['link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1']);
  const ifindex = await ifindexIn(ns, 'd0');
  const netns = netnsPath(ns);
  const obj = await loadFixture(t);
  const rewrite = obj.program('fixture_rewrite');
  const retval = obj.program('fixture_retval_prog');

  await native.tcHookCreate(ifindex, { netns });
  await native.tcHookCreate(ifindex, { netns }); // EEXIST is fine
  t.match((await run(['tc', '-n', ns, 'qdisc', 'show', 'dev', 'd0'])).stdout, /clsact/);

  const filter = { ifindex, direction: 'ingress' as const, handle: 1, priority: 1, netns };
  const attached = await native.tcAttach({ ...filter, progFd: rewrite.info.fd });
  t.same(attached, { handle: 1, priority: 1, progId: rewrite.info.id });
  t.equal(await native.tcQuery(filter), rewrite.info.id);
  t.match((await run(['tc', '-n', ns, 'filter', 'show', 'dev', 'd0', 'ingress'])).stdout, /fixture_rewrite/);
  await t.rejects(native.tcAttach({ ...filter, progFd: retval.info.fd }), { code: 'EEXIST', call: 'bpf_tc_attach' });
  await native.tcAttach({ ...filter, progFd: retval.info.fd, replace: true });
  t.equal(await native.tcQuery(filter), retval.info.id, 'replaced in place');

  const other = { ...filter, priority: 2 };
  const auto = await native.tcAttach({ ifindex, direction: 'ingress', progFd: rewrite.info.fd, priority: 2, netns });
  t.equal(auto.priority, 2);
  t.ok(auto.handle > 0, 'kernel chose a handle');
  t.equal(await native.tcQuery({ ...other, handle: auto.handle }), rewrite.info.id);
  t.equal(await native.tcQuery({ ...filter, direction: 'egress' }), null, 'nothing on egress');

  await native.tcDetach(filter);
  t.equal(await native.tcQuery(filter), null);
  t.equal(await native.tcQuery({ ...other, handle: auto.handle }), rewrite.info.id, 'the other filter stays');
  t.match((await run(['tc', '-n', ns, 'qdisc', 'show', 'dev', 'd0'])).stdout, /clsact/, 'the hook is never destroyed');
  await t.rejects(native.tcDetach(filter), { code: 'ENOENT' });
  await native.tcDetach({ ...other, handle: auto.handle });
});

t.test('TC: bad specs are rejected promises with clear messages', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const { prefix } = await newRun(t);
  const missingNs = `/run/netns/${netnsName(prefix, 'absent')}`;
  await t.rejects(native.tcHookCreate(1, { netns: missingNs }), { code: 'ENOENT', call: 'open' });
  await t.rejects(native.tcHookCreate(0), { code: 'EINVAL', message: /ifindex/ });
  await t.rejects(native.tcAttach({ ifindex: 1, direction: 'sideways' as 'ingress', progFd: 0, netns: missingNs }), { code: 'EINVAL', message: /direction/ });
  await t.rejects(native.tcDetach({ ifindex: 1, direction: 'ingress', handle: 0, priority: 1, netns: missingNs }), { code: 'EINVAL', message: /handle and priority/ });
  await t.rejects(native.tcQuery({ ifindex: 1, direction: 'ingress', handle: 1, priority: 70000, netns: missingNs }), { code: 'EINVAL', message: /priority/ });
});

t.test('cgroup connect4: attach, pin, reopen, update, detach; GC never detaches', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const { prefix, pinDir } = await newRun(t);
  const ns = netnsName(prefix, 'cg');
  await createNetns(ns);
  t.teardown(() => deleteNetns(ns));
  const cgroup = await createRunCgroup(prefix);
  t.teardown(() => removeCgroupTree(cgroup));
  const obj = await loadFixture(t);
  const counters = obj.map('fixture_array');
  const count = (slot: number) => counters.lookup(u32(slot))?.readBigUInt64LE() ?? -1n;
  // A UDP connect() from inside the cgroup (and a sandbox netns; loopback only) runs connect4.
  const script = `const s=require('dgram').createSocket('udp4');s.connect(9,'127.0.0.1',()=>s.close());`;
  const connect = () => run(cgroupArgv(cgroup, [process.execPath, '-e', script], ns));
  const links: NativeLink[] = [];
  t.teardown(() => {
    for (const l of links) {
      try { l.detach(); } catch { /* already detached or closed */ }
      l.close();
    }
  });

  await connect();
  t.equal(count(1), 0n, 'nothing attached yet');
  const link = obj.program('fixture_connect4').attachCgroup(cgroup);
  links.push(link);
  t.ok(link.fd >= 0);
  await connect();
  t.equal(count(1), 1n, 'connect4 ran');

  const path = join(pinDir, 'connect4_link');
  link.pin(path);
  const reopened = native.openPinnedLink(path);
  links.push(reopened);
  reopened.update(obj.program('fixture_connect4_alt'));
  await connect();
  t.same([count(1), count(2)], [1n, 1n], 'update swapped the program atomically');

  link.close();
  link.close();
  t.equal(link.fd, -1);
  t.throws(() => link.detach(), { code: 'EBADF' });
  await connect();
  t.equal(count(2), 2n, 'closing one handle of a pinned link keeps it attached');

  const { statSync } = await import('node:fs');
  const before = reopened.info();
  t.equal(before.cgroupId, statSync(cgroup).ino, 'link info: the cgroup it is attached to (its inode)');
  t.equal(before.progId, obj.program('fixture_connect4_alt').info.id, 'link info: the program it runs now');
  reopened.detach();
  await connect();
  t.same([count(1), count(2)], [1n, 2n], 'detach removed the hook though the link is still pinned');
  t.equal(reopened.info().cgroupId, 0, 'link info after detach: no cgroup (how the agent tells a detached link)');
  reopened.unpin(path);
  t.throws(() => native.openPinnedLink(path), { code: 'ENOENT' });

  // An unpinned link whose handle is garbage-collected must stay attached.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  counters.update(u32(1), u64(0));
  let collected = false;
  const registry = new FinalizationRegistry(() => {
    collected = true;
  });
  (() => {
    registry.register(obj.program('fixture_connect4').attachCgroup(cgroup), 'link');
  })();
  for (let i = 0; i < 50 && !collected; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(collected, 'the link handle was collected');
  await connect();
  t.equal(count(1), 1n, 'still attached after GC (fd leaked on purpose, closed at exit)');
});

t.test('link errors: missing cgroup, missing pin, pin of another kind', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const { prefix, pinDir } = await newRun(t);
  const obj = await loadFixture(t);
  const prog = obj.program('fixture_connect4');
  t.throws(() => prog.attachCgroup(`/sys/fs/cgroup/${netnsName(prefix, 'nope')}`), { code: 'ENOENT', call: 'open' });
  t.throws(() => native.openPinnedLink(join(pinDir, 'missing')), { code: 'ENOENT', call: 'bpf_obj_get' });
  const mapPin = join(pinDir, 'a_map');
  obj.map('fixture_hash').pin(mapPin);
  t.throws(() => native.openPinnedLink(mapPin), { code: 'EINVAL', message: /not a pinned link/ });
  const cgroup = await createRunCgroup(prefix);
  t.teardown(() => removeCgroupTree(cgroup));
  const link = prog.attachCgroup(cgroup);
  t.teardown(() => link.close());
  t.throws(() => link.update({} as never), { code: 'EINVAL', message: /program handle/ });
  link.detach();
});
