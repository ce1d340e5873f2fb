import t from 'tap';
import { join } from 'node:path';
import { requirePrivileges } from '../helpers/privileges.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import type { EchoClientOptions } from '../../src/testbed/echo.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology } from '../../src/testbed/topology.js';
import {
  addon, assertNothingLeft, cgroupAttachments, counter, loadAttachFixture, SLOT, u16,
} from './fixture.js';

const LISTEN_PORT = 8080;
const REWRITTEN_PORT = 9999; // nothing listens: only the program makes it work
const REJECTED_PORT = 7777;

t.test('connect4 on a test cgroup: affects processes inside only; a pinned link outlives every handle', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const testbed = await TestbedRun.start();
  testbed.handleProcessEvents();
  t.teardown(() => testbed.destroy());
  const topo = await createTopology(testbed, { pods: 2 });
  const [client, server] = topo.pods;
  if (!client || !server) throw new Error('topology is missing pods');
  const pinDir = await testbed.pinDir();
  const runCgroup = await testbed.cgroup();
  const clients = await createCgroup(runCgroup, 'clients');
  await startEchoServer(testbed, { ns: server.ns, name: server.name, tcp: [LISTEN_PORT] });

  const obj = await loadAttachFixture(native, testbed, {
    reject_port: u16(REJECTED_PORT), rewrite_from: u16(REWRITTEN_PORT), rewrite_to: u16(LISTEN_PORT),
  });
  const counters = obj.map('attach_counters');
  const prog = obj.program('attach_connect4');

  const connect = async (port: number, inCgroup: boolean) => {
    const opts: EchoClientOptions = { ns: client.ns, proto: 'tcp', host: server.ip, port, timeoutMs: 3000 };
    if (inCgroup) opts.cgroup = clients;
    const [attempt] = await runEchoClient(opts);
    if (!attempt) throw new Error('echo client printed nothing');
    return attempt;
  };
  const assertEffect = async (label: string) => {
    const connectsBefore = counter(counters, SLOT.connect);
    t.match(await connect(REWRITTEN_PORT, true), { ok: true, pod: server.name, peername: { port: LISTEN_PORT } },
      `${label}: inside the cgroup, port ${REWRITTEN_PORT} is rewritten to ${LISTEN_PORT}`);
    t.match(await connect(REJECTED_PORT, true), { ok: false, error: { code: 'EPERM' } },
      `${label}: inside the cgroup, port ${REJECTED_PORT} is refused by the program`);
    t.equal(counter(counters, SLOT.connect) - connectsBefore, 2n, `${label}: the program ran for both connects`);
  };
  const assertNoEffect = async (label: string, inCgroup: boolean) => {
    const connectsBefore = counter(counters, SLOT.connect);
    t.match(await connect(REWRITTEN_PORT, inCgroup), { ok: false, error: { code: 'ECONNREFUSED' } },
      `${label}: port ${REWRITTEN_PORT} goes where it was sent (nothing listens)`);
    t.match(await connect(REJECTED_PORT, inCgroup), { ok: false, error: { code: 'ECONNREFUSED' } },
      `${label}: port ${REJECTED_PORT} is refused by the server's kernel, not by the program`);
    t.match(await connect(LISTEN_PORT, inCgroup), { ok: true, pod: server.name }, `${label}: plain connects work`);
    t.equal(counter(counters, SLOT.connect), connectsBefore, `${label}: the program did not run`);
  };

  await assertNoEffect('before attach', true);

  const link = prog.attachCgroup(clients);
  testbed.cleanup.add('connect4 link', () => link.close());
  t.match(await cgroupAttachments(clients), [{ attach_type: 'cgroup_inet4_connect', name: 'attach_connect4' }],
    'bpftool shows the program on the test cgroup');
  await assertEffect('attached');
  await assertNoEffect('outside the cgroup', false);
  link.detach();
  t.same(await cgroupAttachments(clients), [], 'detach through the live handle empties the hook');
  await assertNoEffect('detached through the handle', true);

  const relink = prog.attachCgroup(clients);
  testbed.cleanup.add('connect4 link, again', () => relink.close());
  await assertEffect('attached again');

  // Pin the link, drop every handle (link, program, object): the hook stays.
  const linkPin = join(pinDir, 'connect4-link');
  relink.pin(linkPin);
  relink.close();
  link.close();
  obj.close();
  await assertEffect('pinned, no handles');

  // Reopen from the pin and detach: the effect is gone although the pin still exists.
  // Kernel 6.18 names link fds "anon_inode:bpf-link" (older ones "bpf_link"): both are accepted.
  await t.test('reopened from its pin, the link detaches', async (t) => {
    const reopened = native.openPinnedLink(linkPin);
    reopened.detach();
    t.same(await cgroupAttachments(clients), [], 'nothing is attached to the test cgroup after detach');
    await assertNoEffect('detached', true);
    reopened.unpin(linkPin);
    reopened.close();
  });

  const made = { prefix: testbed.prefix, cgroup: runCgroup, pinDir };
  await testbed.destroy();
  await assertNothingLeft(t, made);
});

t.test('a pinned, attached link is cleaned up with the run even when the test dies before detaching', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const native = addon();
  const testbed = await TestbedRun.start();
  t.teardown(() => testbed.destroy());
  const pinDir = await testbed.pinDir();
  const runCgroup = await testbed.cgroup();
  const clients = await createCgroup(runCgroup, 'clients');
  const obj = await loadAttachFixture(native, testbed);
  const link = obj.program('attach_connect4').attachCgroup(clients);
  link.pin(join(pinDir, 'left-attached'));
  link.close();
  obj.close();
  t.equal((await cgroupAttachments(clients)).length, 1, 'still attached with no handle open');

  // No detach: the run's cleanup alone must leave nothing behind.
  await testbed.destroy();
  await assertNothingLeft(t, { prefix: testbed.prefix, cgroup: runCgroup, pinDir });
});
