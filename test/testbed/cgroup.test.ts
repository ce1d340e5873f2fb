import t from 'tap';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requirePrivileges } from '../helpers/privileges.js';
import {
  cgroup2Mount, cgroupArgv, cgroupPids, createCgroup, movePid, removeCgroupTree, spawnInCgroup,
} from '../../src/testbed/cgroup.js';
import { netnsPath, spawnInNetns } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';

t.test('cgroup2 mount is found on hybrid and unified hosts', async (t) => {
  const hybrid = 'tmpfs /sys/fs/cgroup tmpfs rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n' +
    'cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n';
  t.equal(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
  const unified = 'cgroup2 /mnt/other cgroup2 rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n';
  t.equal(cgroup2Mount(unified), '/sys/fs/cgroup', 'the standard place wins');
  t.equal(cgroup2Mount('cgroup2 /my\\040cg cgroup2 rw 0 0\n'), '/my cg', 'octal escapes are decoded');
  t.throws(() => cgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n'), /no cgroup2 mount/);
});

t.test('paths outside our subtree are refused', async (t) => {
  const mount = '/sys/fs/cgroup/unified';
  t.throws(() => cgroupArgv(mount, ['true'], undefined, mount), /refusing to touch cgroup \/sys\/fs\/cgroup\/unified/);
  t.throws(() => cgroupArgv(`${mount}/system.slice`, ['true'], undefined, mount), /refusing/);
  await t.rejects(removeCgroupTree(`${mount}/../unified`, mount), /refusing/);
  await t.rejects(movePid(`${mount}/user.slice`, 1, mount), /refusing/);
  t.same(cgroupArgv(`${mount}/sluice-test-sl0000/a`, ['x', 'y'], undefined, mount).slice(-3),
    [`${mount}/sluice-test-sl0000/a`, 'x', 'y'], 'paths are positional arguments, not interpolated');
});

const inode = (path: string) => statSync(path).ino;

t.test('processes are placed in a test cgroup and network namespace, and removed with it', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  t.teardown(() => run.destroy());
  const root = await run.cgroup();
  t.equal(root, join(cgroup2Mount(), `sluice-test-${run.prefix}`));
  const clients = await createCgroup(root, 'clients');
  await t.rejects(createCgroup(root, '../escape'), /cgroup name "..\/escape"/);
  const ns = await run.netns('pod');

  const inside = run.own(spawnInCgroup(clients, ['sleep', '300'], ns));
  const outside = run.own(spawnInNetns(ns, ['sleep', '300']));
  await new Promise((r) => setTimeout(r, 300));
  const pid = inside.pid as number;
  t.ok((await cgroupPids(clients)).includes(pid), `pid ${pid} is listed in ${clients}/cgroup.procs`);
  t.notOk((await cgroupPids(clients)).includes(outside.pid as number), 'a process spawned without it is not');
  const procCgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8');
  t.match(procCgroup, new RegExp(`^0::/sluice-test-${run.prefix}/clients$`, 'm'));
  t.equal(inode(`/proc/${pid}/ns/net`), inode(netnsPath(ns)), 'and it runs in the pod namespace');
  t.not(inode(`/proc/${pid}/ns/net`), inode('/proc/self/ns/net'), 'not in ours');

  // movePid puts an already-running process into a cgroup.
  await movePid(clients, outside.pid as number);
  t.ok((await cgroupPids(clients)).includes(outside.pid as number), 'movePid moved it');

  const exited = new Promise((r) => inside.once('exit', r));
  await removeCgroupTree(root);
  await exited;
  t.notOk(existsSync(root), 'the subtree is gone');
  t.equal(inside.signalCode, 'SIGKILL', 'its processes were killed');
  await removeCgroupTree(root);
  t.pass('removing it again is fine');
});
