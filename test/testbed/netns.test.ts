import t from 'tap';
import { readFile } from 'node:fs/promises';
import { requirePrivileges } from '../helpers/privileges.js';
import { TestbedRun } from '../../src/testbed/run.js';
import {
  addAddress, addVethPair, getSysctl, ifindexIn, ipIn, linkCounters, linkUp, listNetns, runInNetns, setSysctl,
} from '../../src/testbed/netns.js';

t.test('namespaces, veths, addresses, sysctls and commands run inside a namespace', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  t.teardown(() => run.destroy());

  const a = await run.netns('a');
  const b = await run.netns('b');
  t.ok((await listNetns()).includes(a), `${a} is listed by ip netns`);

  await addVethPair({ ns: a, name: 'va', peerNs: b, peerName: 'vb' });
  await addAddress(a, 'va', '10.250.0.1/30');
  await addAddress(b, 'vb', '10.250.0.2/30');
  await linkUp(a, 'va');
  await linkUp(b, 'vb');
  // No duplicate address detection in test namespaces (createNetns): the link-local address is
  // usable at once, so the first neighbour solicitation is not held back for 1-2 s.
  const linkLocal = (await ipIn(a, ['-6', 'addr', 'show', 'dev', 'va'])).stdout;
  t.match(linkLocal, /inet6 fe80::/, 'va has its link-local address');
  t.notMatch(linkLocal, /tentative/, 'and it is not tentative');
  const ifindex = await ifindexIn(a, 'va');
  t.ok(ifindex > 1, `va has ifindex ${ifindex} in ${a}`);
  await t.rejects(ifindexIn(a, 'vb'), /vb/, 'the peer end is not in namespace a');

  await setSysctl(a, 'net.ipv4.ip_forward', '1');
  t.equal(await getSysctl(a, 'net.ipv4.ip_forward'), '1');
  t.equal(await getSysctl(b, 'net.ipv4.ip_forward'), '0', 'sysctls are per namespace');

  // Inside, /sys/class/net is the namespace's own, and /sys/fs/bpf and cgroup2 stay the host's.
  const pinDir = await run.pinDir();
  const cg = await run.cgroup();
  const { stdout } = await runInNetns(a, ['sh', '-c', 'ls /sys/class/net; echo ---; cat /sys/class/net/va/ifindex; ' +
    'test -d "$1" && echo pins-visible; test -d "$2" && echo cgroup-visible', 'sh', pinDir, cg]);
  const [links = '', rest = ''] = stdout.split('---\n');
  t.same(links.split('\n').filter(Boolean).sort(), ['lo', 'va']);
  t.match(rest, new RegExp(`^${ifindex}\\n`), 'ifindex inside matches ip -n');
  t.match(rest, /pins-visible/);
  t.match(rest, /cgroup-visible/);

  const hostLinks = (await readFile('/proc/net/dev', 'utf8'));
  t.notMatch(hostLinks, /\bva:/, 'nothing appeared in the root namespace');

  // The link works: a's address answers from b (TCP would need a server; `ip route get` proves routing).
  const route = await ipIn(b, ['route', 'get', '10.250.0.1']);
  t.match(route.stdout, /dev vb/);

  // Interface counters: three 1000-byte UDP datagrams from a leave va, and arrive on vb, as at
  // least 3 x 1028 bytes (IP + UDP headers); each side counts its own direction.
  const [va0, vb0] = [await linkCounters(a, 'va'), await linkCounters(b, 'vb')];
  await runInNetns(a, [process.execPath, '-e', `const s = require('dgram').createSocket('udp4'); let n = 0;
    const next = () => n++ < 3 ? s.send(Buffer.alloc(1000), 9, '10.250.0.2', next) : s.close(); next();`]);
  const [va1, vb1] = [await linkCounters(a, 'va'), await linkCounters(b, 'vb')];
  t.ok(va1.txBytes - va0.txBytes >= 3 * 1028 && va1.txPackets - va0.txPackets >= 3, `va sent the datagrams (${va1.txBytes - va0.txBytes} bytes)`);
  t.ok(vb1.rxBytes - vb0.rxBytes >= 3 * 1028 && vb1.rxPackets - vb0.rxPackets >= 3, `vb received them (${vb1.rxBytes - vb0.rxBytes} bytes)`);
  await t.rejects(linkCounters(a, 'vb'), /vb/, 'no counters for an interface of another namespace');

  await run.deleteNetns(b);
  t.notOk((await listNetns()).includes(b), 'deleteNetns removes the namespace at once');
  // The kernel tears a namespace down asynchronously (cleanup_net runs from a workqueue): the
  // peer's end goes within moments of the unmount, not always before `ip netns delete` returns.
  let gone: unknown;
  for (let i = 0; i < 50 && gone === undefined; i++) {
    gone = await ifindexIn(a, 'va').then(() => undefined, (err: unknown) => err);
    if (gone === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  t.match(String(gone), /va/, 'the veth pair died with its peer namespace (within 5 s)');
  await t.rejects(run.deleteNetns(b), /was not created by run/);

  await run.destroy();
  t.notOk((await listNetns()).includes(a), 'destroy removes the rest');
});

t.test('bad names are refused before anything runs', async (t) => {
  await t.rejects(addVethPair({ ns: 'x', name: 'a-name-that-is-too-long', peerNs: 'y', peerName: 'b' }),
    /interface name "a-name-that-is-too-long"/);
  await t.rejects(setSysctl('x', 'net.ipv4;rm', '1'), /sysctl key "net.ipv4;rm"/);
  t.throws(() => ipIn('../etc', ['link']), /namespace name "..\/etc"/);
});
