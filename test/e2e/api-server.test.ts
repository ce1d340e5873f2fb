// Issue 4, end to end: the real agent against a fake Kubernetes API server, with real traffic
// through both paths (connect-time in the client's cgroup, TC for a client outside it).
// Services and EndpointSlices change through the API server's watch; the watch is dropped and
// answered 410 while changes are made; malformed objects are logged and harm nothing else.
import t from 'tap';
import type { LogLine } from './agent-bed.js';
import { createAgentBed, expectNotAnswered, expectRefused, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';

const VIP = '10.96.0.20';
const HTTP = [{ name: 'http', port: 80 }];
const KEY = portKey('web', 'http');

t.test('agent + fake API server + real traffic', async (t) => {
  const bed = await createAgentBed(t, { source: 'api', tcFrom: 'client-tc' });
  if (!bed) return;
  const api = bed.api!;
  await api.apply(nodeObject());
  const agent = bed.startAgent();
  await bed.waitForSynced();
  t.pass('agent synced against the (empty) API server');

  await t.test('create a Service and its slice → traffic flows on both paths', async (t) => {
    await api.apply(service('web', VIP, HTTP));
    await api.apply(slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    await bed.waitForBackends(KEY, ['web-a', 'web-b'], 80);
    const r = await bed.bothPaths(VIP, 80, 20);
    expectServed(t, r['connect-time'], ['web-a', 'web-b'], 'connect-time', { all: true, vip: VIP, port: 80 });
    expectServed(t, r.tc, ['web-a', 'web-b'], 'TC path', { all: true });
  });

  await t.test('scale up: new connections reach the new endpoint', async (t) => {
    await api.apply(slice('web-1', 'web', ['web-a', 'web-b', 'web-c'], HTTP));
    await bed.waitForBackends(KEY, ['web-a', 'web-b', 'web-c']);
    // 30 connections over 3 backends: the chance that one is never picked is ~1e-5.
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 30), ['web-a', 'web-b', 'web-c'], 'connect-time', { all: true });
    expectServed(t, await bed.traffic('tc', VIP, 80, 30), ['web-a', 'web-b', 'web-c'], 'TC path', { all: true });
  });

  await t.test('scale down: new connections avoid the removed endpoints', async (t) => {
    await api.apply(slice('web-1', 'web', ['web-c'], HTTP));
    await bed.waitForBackends(KEY, ['web-c']);
    const r = await bed.bothPaths(VIP, 80, 10);
    expectServed(t, r['connect-time'], ['web-c'], 'connect-time');
    expectServed(t, r.tc, ['web-c'], 'TC path');
  });

  await t.test('change the port: the new port works, the old one is not answered', async (t) => {
    await api.apply(service('web', VIP, [{ name: 'http', port: 8000 }]));
    await bed.waitForServices('web on port 8000 only', (svcs) => {
      const s = svcs.find((x) => x.key === KEY);
      return s !== undefined && s.frontends.length === 1 && s.frontends[0]?.port === 8000;
    });
    const fresh = await bed.bothPaths(VIP, 8000, 5);
    expectServed(t, fresh['connect-time'], ['web-c'], 'connect-time on :8000', { vip: VIP, port: 8000 });
    expectServed(t, fresh.tc, ['web-c'], 'TC path on :8000');
    const old = await bed.bothPaths(VIP, 80, 2, 500);
    expectNotAnswered(t, old['connect-time'], 'connect-time on the old :80');
    expectNotAnswered(t, old.tc, 'TC path on the old :80');
    // As kube-proxy's nftables mode: a port the Service no longer has on its (still active)
    // ClusterIP is refused at once (sl_vips4), not routed off the node.
    expectRefused(t, old['connect-time'], 'connect-time on the old :80');
    expectRefused(t, old.tc, 'TC path on the old :80');
    await api.apply(service('web', VIP, HTTP));
    await bed.waitForBackends(KEY, ['web-c'], 80);
  });

  await t.test('no endpoints left: connections are refused at once (kube-proxy rejects)', async (t) => {
    await api.apply(slice('web-1', 'web', [], HTTP));
    await bed.waitForBackends(KEY, []);
    const r = await bed.bothPaths(VIP, 80, 3);
    expectRefused(t, r['connect-time'], 'connect-time, no endpoints');
    expectRefused(t, r.tc, 'TC path, no endpoints');
  });

  await t.test('delete the Service: it is unprogrammed and nothing answers', async (t) => {
    await api.delete('Service', 'web');
    await api.delete('EndpointSlice', 'web-1');
    await bed.waitForServices('web gone', (svcs) => !svcs.some((s) => s.key === KEY));
    // The ClusterIP is no longer allocated: kube-proxy drops such traffic (nftables: "Drop
    // traffic to unallocated ClusterIPs"), so "not answered" is the contract, not "refused".
    const r = await bed.bothPaths(VIP, 80, 2, 500);
    expectNotAnswered(t, r['connect-time'], 'connect-time after delete');
    expectNotAnswered(t, r.tc, 'TC path after delete');
    // Recreated, it works again.
    await api.apply(service('web', VIP, HTTP));
    await api.apply(slice('web-1', 'web', ['web-a'], HTTP));
    await bed.waitForBackends(KEY, ['web-a'], 80);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 3), ['web-a'], 'recreated');
  });

  await t.test('the watch drops: the agent reconnects and catches up with a change made meanwhile', async (t) => {
    const watchesBefore = await api.call<number>('watchCount');
    // New watches are held for 700 ms, every open one is cut, then the slice changes: the change
    // surely happens while no watch is connected, and reaches the agent only by resuming.
    await api.call('setResponseDelay', 700, 'watch');
    const dropped = await api.call<number>('dropWatches');
    await api.apply(slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    t.equal(dropped, 3, 'the Service, EndpointSlice and Node watches were cut');
    await bed.waitForBackends(KEY, ['web-a', 'web-b']);
    await api.call('setResponseDelay', 0);
    t.ok((await api.call<number>('watchCount')) > watchesBefore, 'the agent opened new watches');
    await bed.waitFor('three watches open again', async () => (await api.call<number>('activeWatchCount')) === 3);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 20), ['web-a', 'web-b'], 'after the drop', { all: true });
  });

  await t.test('the API server answers 410 Gone: the agent relists and catches up', async (t) => {
    const listsBefore = await api.call<number>('listCount');
    const from = agent.logs.length;
    await api.call('forceGoneOnNextWatch', 3, 'event');
    await api.call('dropWatches');
    await api.apply(slice('web-1', 'web', ['web-b'], HTTP));
    await bed.waitForBackends(KEY, ['web-b']);
    await agent.waitForLog((l) => /410/.test(l.msg ?? ''), 'a 410 relist', 10_000, from);
    t.ok((await api.call<number>('listCount')) > listsBefore, 'the agent listed again');
    expectServed(t, await bed.traffic('tc', VIP, 80, 5), ['web-b'], 'after the 410');
  });

  await t.test('malformed objects are logged with object, field and value; nothing else is harmed', async (t) => {
    const before = (await bed.services()).find((s) => s.key === KEY);
    t.ok(before, 'web is programmed');
    const from = agent.logs.length;
    await api.apply(service('bad-ip', 'not-an-ip', HTTP));
    await api.apply(slice('bad-ip-1', 'bad-ip', ['web-c'], HTTP));
    await api.apply(slice('orphan', 'web', ['web-c'], HTTP, { labels: { app: 'orphan' } }));
    const isBadIp = (l: LogLine) => l.kind === 'Service' && l.object === 'e2e/bad-ip' && /clusterIP/.test(String(l.field)) && l.value === 'not-an-ip';
    const badIp = await agent.waitForLog(isBadIp, 'the bad clusterIP (kind, object, field, value)', 10_000, from);
    t.equal(badIp.level, 'warn', 'logged as a warning');
    const orphan = await agent.waitForLog((l) => l.kind === 'EndpointSlice' && l.object === 'e2e/orphan', 'the slice without its service-name label', 10_000, from);
    t.match(String(orphan.field), /labels/, 'the orphan slice log names the label field', { line: orphan });
    t.match(String(orphan.msg), /kubernetes\.io\/service-name|label/, 'and says what is wrong', { line: orphan });

    // A good change after the bad objects still applies, and nothing programmed was wiped.
    await api.apply(service('web2', '10.96.0.21', HTTP));
    await api.apply(slice('web2-1', 'web2', ['web-c'], HTTP));
    const svcs = await bed.waitForBackends(portKey('web2', 'http'), ['web-c'], 80);
    const after = svcs.find((s) => s.key === KEY);
    t.same(after, before, 'web is programmed exactly as before (same id, frontends, backends)');
    t.notOk(svcs.some((s) => s.name === 'bad-ip'), 'the bad Service is not programmed');
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 5), ['web-b'], 'web after the bad objects', { vip: VIP, port: 80 });
    expectServed(t, await bed.traffic('tc', '10.96.0.21', 80, 5), ['web-c'], 'web2 added after the bad objects');
    const status = await bed.status();
    t.ok(status.errors.some((e) => e.component === 'model' && e.object === 'e2e/bad-ip' && e.message.includes('not-an-ip')),
      'sluicectl status lists the bad Service with its value', { errors: status.errors });
    t.equal(status.sync.state, 'synced', 'the agent stays synced');

    // A bad MODIFICATION of a programmed Service (the API server would refuse this value; a
    // manifest or a buggy controller need not): the last good version stays programmed.
    const from2 = agent.logs.length;
    await api.apply(service('web2', '10.96.0.999', HTTP));
    await agent.waitForLog((l) => l.kind === 'Service' && l.object === 'e2e/web2' && l.value === '10.96.0.999', 'the bad update of web2', 10_000, from2);
    await agent.waitForLog((l) => /last version without errors stays programmed/.test(String(l.msg)), 'the last-good note', 10_000, from2);
    expectServed(t, await bed.traffic('tc', '10.96.0.21', 80, 5), ['web-c'], 'web2 still served at its last good address');
    t.ok((await bed.services()).some((s) => s.key === portKey('web2', 'http') && s.frontends.some((f) => f.ip === '10.96.0.21')), 'and still programmed');
  });

  t.same(agent.otherOutput, [], 'the agent wrote only JSON log lines to stdout');
  t.notOk(agent.logs.some((l) => JSON.stringify(l).includes('fake-token-')), 'the bearer token never shows up in the logs');
});
