import t from 'tap';
import pino from 'pino';
import { InterfaceWatcher, interfaceMatcher } from '../../src/agent/interfaces.js';
import { listLinks, parseIpLinkJson, type Link } from '../../src/datapath/links.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { siblingScript } from '../helpers/sibling-script.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { addVethPair, netnsPath } from '../../src/testbed/netns.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import { run as runCommand } from '../../src/testbed/exec.js';

const logger = pino({ level: 'silent' });

t.test('globs match whole names', async (t) => {
  const m = interfaceMatcher(['veth*', 'eni?', 'a.b']);
  t.ok(m('veth1234'));
  t.ok(m('eni1'));
  t.notOk(m('eni12'));
  t.notOk(m('xveth1'));
  t.ok(m('a.b'));
  t.notOk(m('aXb'), 'a dot is literal');
});

t.test('attaches to existing and new interfaces, notices removal, retries failures', async (t) => {
  const links = new Map<string, number>([['lo', 1], ['veth1', 7]]);
  let listed = 0;
  const added: string[] = [];
  const removed: string[] = [];
  let failOnce = true;
  const w = new InterfaceWatcher({
    patterns: ['veth*'], logger, useMonitor: false, rescanPeriodMs: 60_000,
    listLinks: async () => {
      listed++;
      return [...links].map(([ifname, ifindex]): Link => ({ ifname, ifindex }));
    },
    onAdded: ({ name, ifindex }) => {
      if (name === 'veth2' && failOnce) { failOnce = false; throw new Error('EBUSY'); }
      added.push(`${name}:${ifindex}`);
    },
    onRemoved: ({ name }) => void removed.push(name),
  });
  await w.start();
  t.teardown(() => w.stop());
  t.same(added, ['veth1:7'], 'lo is not a workload interface');
  links.set('veth2', 9);
  await w.rescan();
  t.same(added, ['veth1:7'], 'a failed attach is not recorded');
  await w.rescan();
  t.same(added, ['veth1:7', 'veth2:9'], 'and is retried');
  links.delete('veth1');
  await w.rescan();
  t.same(removed, ['veth1']);
  t.same(w.current(), [{ name: 'veth2', ifindex: 9 }]);
  // Same name, new ifindex (pod recreated): attach again.
  links.set('veth2', 12);
  await w.rescan();
  t.same(added.at(-1), 'veth2:12');
  // A burst of requests (link events) while nothing runs costs one scan, which sees the last change.
  const before = listed;
  links.set('veth3', 14);
  await Promise.all([w.rescan(), w.rescan(), w.rescan()]);
  t.equal(listed - before, 1, 'three requests, one scan');
  t.same(added.at(-1), 'veth3:14');
});

t.test('ip -j link show is parsed into names and ifindexes; junk is an error', async (t) => {
  t.same(parseIpLinkJson('[{"ifindex":5,"ifname":"veth1","link_index":4},{"ifindex":1,"ifname":"lo"}]'),
    [{ ifname: 'lo', ifindex: 1 }, { ifname: 'veth1', ifindex: 5 }]);
  t.throws(() => parseIpLinkJson('{"ifindex":1}'), /expected a JSON array/);
  t.throws(() => parseIpLinkJson('[{"ifname":"lo"}]'), /without ifname\/ifindex/);
});

// The agent may be started in its namespace with a plain setns (nsenter --net) and no fresh sysfs:
// /sys/class/net then lists the root namespace's links. The watcher must list its own.
t.test('in a namespace entered without a fresh sysfs, the watcher sees that namespace\'s links only', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const bed = await TestbedRun.start();
  bed.handleProcessEvents();
  t.teardown(() => bed.destroy());
  const a = await bed.netns('a');
  const b = await bed.netns('b');
  await addVethPair({ ns: a, name: 'lka', peerNs: b, peerName: 'lkb' });
  const own = await listLinks(netnsPath(a));
  t.same(own.map((l) => l.ifname).sort(), ['lka', 'lo'], 'the namespace holds lo and its veth end');

  const child = siblingScript(import.meta.url, 'links-child');
  const { stdout } = await runCommand(['nsenter', `--net=${netnsPath(a)}`, '--', ...nodeArgv(child)], { timeoutMs: 60_000 });
  const seen = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { watcher: { name: string; ifindex: number }[]; sysfs: string[] };
  t.same(seen.watcher.map((l) => ({ ifname: l.name, ifindex: l.ifindex })).sort((x, y) => x.ifindex - y.ifindex), own,
    'the watcher lists exactly the namespace\'s links, with their ifindexes there');
  const root = (await listLinks()).map((l) => l.ifname).filter((n) => n !== 'lo');
  t.ok(root.length > 0, 'the root namespace has links besides lo');
  t.same(seen.watcher.filter((l) => root.includes(l.name)), [], 'none of the root namespace\'s links');
  // The premise: in that process sysfs still shows the root namespace, so a sysfs scan would be wrong.
  t.notOk(seen.sysfs.includes('lka'), `/sys/class/net there does not list lka (${seen.sysfs.join(' ')})`);
});
