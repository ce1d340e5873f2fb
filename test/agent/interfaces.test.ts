import t from 'tap';
import pino from 'pino';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InterfaceWatcher, interfaceMatcher } from '../../src/agent/interfaces.js';

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
  const dir = await mkdtemp(join(tmpdir(), 'sluice-ifaces-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const addIface = async (name: string, ifindex: number) => {
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'ifindex'), `${ifindex}\n`);
  };
  await addIface('lo', 1);
  await addIface('veth1', 7);
  const added: string[] = [];
  const removed: string[] = [];
  let failOnce = true;
  const w = new InterfaceWatcher({
    patterns: ['veth*'], logger, sysClassNet: dir, useMonitor: false, rescanPeriodMs: 60_000,
    onAdded: ({ name, ifindex }) => {
      if (name === 'veth2' && failOnce) { failOnce = false; throw new Error('EBUSY'); }
      added.push(`${name}:${ifindex}`);
    },
    onRemoved: ({ name }) => void removed.push(name),
  });
  await w.start();
  t.teardown(() => w.stop());
  t.same(added, ['veth1:7'], 'lo is not a workload interface');
  await addIface('veth2', 9);
  await w.rescan();
  t.same(added, ['veth1:7'], 'a failed attach is not recorded');
  await w.rescan();
  t.same(added, ['veth1:7', 'veth2:9'], 'and is retried');
  await rm(join(dir, 'veth1'), { recursive: true });
  await w.rescan();
  t.same(removed, ['veth1']);
  t.same(w.current(), [{ name: 'veth2', ifindex: 9 }]);
  // Same name, new ifindex (pod recreated): attach again.
  await rm(join(dir, 'veth2'), { recursive: true });
  await addIface('veth2', 12);
  await w.rescan();
  t.same(added.at(-1), 'veth2:12');
});
