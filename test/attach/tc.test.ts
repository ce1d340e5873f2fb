import t from 'tap';
import { join } from 'node:path';
import { requirePrivileges } from '../helpers/privileges.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import { run } from '../../src/testbed/exec.js';
import { netnsPath, runInNetns } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology } from '../../src/testbed/topology.js';
import { addon, assertNothingLeft, counter, loadAttachFixture, SLOT } from './fixture.js';

t.test('a TC program on a veth in a namespace counts real packets; detach stops it and spares other filters', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const testbed = await TestbedRun.start();
  testbed.handleProcessEvents();
  t.teardown(() => testbed.destroy());
  const topo = await createTopology(testbed, { pods: 2 });
  const [client, server] = topo.pods;
  if (!client || !server) throw new Error('topology is missing pods');
  const pinDir = await testbed.pinDir();
  await startEchoServer(testbed, { ns: server.ns, name: server.name, tcp: [8080] });

  const obj = await loadAttachFixture(native, testbed);
  const counters = obj.map('attach_counters');
  const primary = obj.program('attach_count_primary');
  const secondary = obj.program('attach_count_secondary');
  const netns = netnsPath(topo.nodeNs);
  const hook = { ifindex: client.hostIfindex, direction: 'ingress' as const, netns };

  await native.tcHookCreate(client.hostIfindex, { netns });
  const ours = await native.tcAttach({ ...hook, progFd: primary.info.fd, handle: 1, priority: 1 });
  t.match(ours, { handle: 1, priority: 1, progId: primary.info.id });
  t.equal(await native.tcQuery({ ...hook, handle: 1, priority: 1 }), primary.info.id, 'tcQuery sees our filter');

  // Someone else's filter on the same hook, added with iproute2: the secondary program, pinned.
  const pinnedProg = join(pinDir, 'secondary');
  await run(['bpftool', 'prog', 'pin', 'id', String(secondary.info.id), pinnedProg]);
  await runInNetns(topo.nodeNs, ['tc', 'filter', 'add', 'dev', client.hostIfname, 'ingress', 'prio', '200',
    'handle', '1', 'bpf', 'direct-action', 'object-pinned', pinnedProg]);

  const traffic = async () => {
    const attempts = await runEchoClient({ ns: client.ns, proto: 'tcp', host: server.ip, port: 8080, count: 5 });
    t.ok(attempts.every((a) => a.ok && a.pod === server.name), `traffic flows: ${JSON.stringify(attempts.filter((a) => !a.ok))}`);
  };
  const read = () => ({ primary: counter(counters, SLOT.primary), secondary: counter(counters, SLOT.secondary) });

  const before = read();
  await traffic();
  const during = read();
  // 5 TCP conversations: each at least SYN, ACK, data and FIN enter the node from the client pod.
  t.ok(during.primary - before.primary >= 20n, `our filter counted ${during.primary - before.primary} packets`);
  t.ok(during.secondary - before.secondary >= 20n, `the iproute2 filter counted ${during.secondary - before.secondary}`);

  await native.tcDetach({ ...hook, handle: 1, priority: 1 });
  t.equal(await native.tcQuery({ ...hook, handle: 1, priority: 1 }), null, 'our filter is gone');
  const afterDetach = read();
  await traffic();
  const after = read();
  t.equal(after.primary, afterDetach.primary, 'after detach our counter stops');
  t.ok(after.secondary - afterDetach.secondary >= 20n,
    `the other filter survived our detach and still counts (${after.secondary - afterDetach.secondary})`);
  const shown = (await runInNetns(topo.nodeNs, ['tc', 'filter', 'show', 'dev', client.hostIfname, 'ingress'])).stdout;
  t.match(shown, new RegExp(`pref 200 bpf .*id ${secondary.info.id}`), 'tc still lists the other filter');
  t.notMatch(shown, /pref 1 bpf/, 'and not ours');

  // Nothing of this happened on the other pod's veth or in the root namespace.
  const otherHook = (await runInNetns(topo.nodeNs, ['tc', 'filter', 'show', 'dev', server.hostIfname, 'ingress'])).stdout;
  t.equal(otherHook.trim(), '', 'the server pod\'s veth has no filters');

  const made = { prefix: testbed.prefix, pinDir, cgroup: undefined };
  await testbed.destroy();
  await assertNothingLeft(t, made);
});

// The kernel answers EINVAL ("Cannot find specified filter chain") when a hook has no filter
// at all; the addon maps that to the contract's null / ENOENT.
t.test('querying or detaching on a hook with no filters at all: null and ENOENT', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const testbed = await TestbedRun.start();
  t.teardown(() => testbed.destroy());
  const topo = await createTopology(testbed, { pods: 1 });
  const pod = topo.pods[0];
  if (!pod) throw new Error('topology is missing a pod');
  const spec = { ifindex: pod.hostIfindex, direction: 'ingress' as const, handle: 1, priority: 1, netns: netnsPath(topo.nodeNs) };
  await native.tcHookCreate(pod.hostIfindex, { netns: spec.netns });
  t.equal(await native.tcQuery(spec).catch((e: Error) => e.message), null);
  await t.rejects(native.tcDetach(spec), { code: 'ENOENT' });
});
