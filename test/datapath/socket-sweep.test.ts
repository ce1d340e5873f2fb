// The UDP socket sweeper (src/datapath/socket-sweep.ts): which namespaces it finds, that it
// degrades to a logged no-op without its object, that one bad namespace does not stop a sweep,
// that Datapath exposes it, and what one sweep over 50 namespaces costs. Sweeps here only ever
// visit this test's own namespaces (the `namespaces` option); the node-wide listing is only
// listed, never swept.
import type { ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import t from 'tap';
import { Datapath } from '../../src/datapath/datapath.js';
import { dedupeNamespaces, listNetworkNamespaces, UdpSocketSweeper } from '../../src/datapath/socket-sweep.js';
import { netnsPath, spawnInNetns } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { requirePrivileges } from '../helpers/privileges.js';

const id = (path: string) => {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
};

function capture() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines, warns: () => lines.filter((l) => l.level === 40) };
}

/** A node process in `ns` holding `sockets` loopback UDP sockets (half of them connected). */
function holder(run: TestbedRun, ns: string, sockets = 2): Promise<ChildProcess> {
  const code = `
    const dgram = require('node:dgram');
    let left = ${sockets};
    const done = () => { if (--left === 0) console.log('ready'); };
    for (let i = 0; i < ${sockets}; i += 2) {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        done();
        const c = dgram.createSocket('udp4');
        c.connect(s.address().port, '127.0.0.1', done);
      });
    }`;
  const child = run.own(spawnInNetns(ns, [process.execPath, '--input-type=commonjs', '-e', code]));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket holder in ${ns} not ready`)), 15_000);
    child.stdout?.on('data', (c: Buffer) => {
      if (!c.toString().includes('ready')) return;
      clearTimeout(timer);
      resolve(child);
    });
  });
}

t.test('namespace listing: own first, every process namespace once', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const ns = await run.netns('sweep-list');
  const child = await holder(run, ns);
  const want = id(netnsPath(ns));

  const all = listNetworkNamespaces({ netnsDirs: [] });
  t.same(all[0], { path: null, id: id('/proc/self/ns/net') }, "the agent's own namespace first, swept without setns");
  t.equal(new Set(all.map((n) => n.id)).size, all.length, 'each namespace once');
  const found = all.find((n) => n.id === want);
  t.ok(found, 'the namespace of a process in a test namespace is found through /proc');
  t.match(found?.path, /^\/proc\/[0-9]+\/ns\/net$/);
  t.ok(listNetworkNamespaces({ procRoot: '/nonexistent', netnsDirs: ['/run/netns'] }).some((n) => n.id === want && n.path === netnsPath(ns)), 'named namespaces (/run/netns) too');
  t.same(listNetworkNamespaces({ procRoot: '/nonexistent', netnsDirs: ['/nonexistent'] }).length, 1, 'nothing readable: only our own');

  t.same(
    dedupeNamespaces([netnsPath(ns), `/proc/${child.pid}/ns/net`, netnsPath(ns), `/run/netns/${run.prefix}-gone`]),
    [{ path: netnsPath(ns), id: want }],
    'explicit files: deduplicated by inode, vanished ones left out',
  );
});

t.test('without its object the sweeper says so once and does nothing', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const log = capture();
  const sweeper = await UdpSocketSweeper.load({ pinDir: await run.pinDir(), objectPath: '/nonexistent/sockdestroy.bpf.o', logger: log.logger, namespaces: () => [] });
  t.equal(sweeper.available, false);
  t.equal(log.warns().length, 1, 'one warning');
  t.match(log.warns()[0], { msg: /UDP socket sweep disabled: the socket-destroy program could not be loaded/, code: 'ENOENT', libbpf: [/failed to open/] });
  t.ok(log.lines.some((l) => l.level === 20 && l.source === 'libbpf'), "libbpf's lines at debug");
  t.same(sweeper.sweep(), { swept: 0, vanished: 0, failed: [], durationMs: 0 }, 'sweep is a no-op');
  t.equal(log.warns().length, 1, 'and does not warn again');
  t.same(sweeper.programInfo(), null);
  t.match(sweeper.stats(), { available: false, sweeps: 0 });
  sweeper.close();
});

t.test('a failing namespace is reported; the others are still swept', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const a = netnsPath(await run.netns('sweep-a'));
  const b = netnsPath(await run.netns('sweep-b'));
  const log = capture();
  const sweeper = await UdpSocketSweeper.load({ pinDir: await run.pinDir(), logger: log.logger, namespaces: () => [a, '/dev/null', b] });
  t.teardown(() => sweeper.close());
  t.equal(sweeper.available, true, 'loads on this kernel');
  const report = sweeper.sweep();
  t.equal(report.swept, 2, 'both test namespaces swept');
  t.equal(report.failed.length, 1);
  t.match(report.failed[0], { path: '/dev/null', message: /setns/ });
  t.match(log.warns()[0], { failed: 1, swept: 2, msg: /failed in some network namespaces/ });
  t.match(sweeper.stats(), { available: true, sweeps: 1, namespacesSwept: 2, namespacesFailed: 1, lastNamespaces: 3 });
});

t.test('Datapath exposes the sweep when asked for it', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const pinDir = join(await run.pinDir(), 'sluice');
  const ns = netnsPath(await run.netns('sweep-dp'));
  const plain = await Datapath.load({ pinDir, connectTimeLb: 'tcp-udp' });
  t.equal(plain.udpSocketSweep, undefined, 'not without udpSocketSweep');
  t.equal(plain.udpSocketSweeper, null);
  plain.close();

  const dp = await Datapath.load({ pinDir: join(await run.pinDir(), 'resized'), connectTimeLb: 'tcp-udp', maxEntries: { sl_sock_revnat4: 4096 }, udpSocketSweep: { namespaces: () => [ns] } });
  t.teardown(() => dp.close());
  t.type(dp.udpSocketSweep, 'function');
  t.ok(dp.programIds().sl_sock_destroy_udp, 'its program is listed with the others');
  dp.udpSocketSweep?.();
  t.match(dp.udpSocketSweeper?.stats(), { sweeps: 1, namespacesSwept: 1, namespacesFailed: 0 }, 'one sweep over the given namespace (same pinned maps, resized sl_sock_revnat4)');
});

t.test('cost of one sweep over 50 namespaces', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const N = 50;
  const names: string[] = [];
  for (let i = 0; i < N; i++) names.push(await run.netns(`cost-${i}`));
  const paths = names.map(netnsPath);
  // Some namespaces hold sockets (connected ones are what the program inspects).
  for (let i = 0; i < N; i += 10) await holder(run, names[i] as string, 8);
  const sweeper = await UdpSocketSweeper.load({ pinDir: await run.pinDir(), namespaces: () => paths });
  t.teardown(() => sweeper.close());
  sweeper.sweep();
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const r = sweeper.sweep();
    t.equal(r.swept, N, `sweep ${i}: all ${N} namespaces`, { diagnostic: false });
    times.push(r.durationMs);
  }
  times.sort((x, y) => x - y);
  const median = times[times.length >> 1] as number;
  const start = performance.now();
  const listed = listNetworkNamespaces();
  const listMs = performance.now() - start;
  t.comment(`one sweep over ${N} namespaces: median ${median.toFixed(2)} ms, min ${times[0]?.toFixed(2)} ms, max ${times[times.length - 1]?.toFixed(2)} ms ` +
    `(${((median / N) * 1000).toFixed(0)} µs per namespace); listing this node's namespaces (${listed.length}) from /proc: ${listMs.toFixed(2)} ms`);
  t.ok(median < 500, `a sweep of ${N} namespaces stays well under a second (median ${median.toFixed(1)} ms)`);
});
