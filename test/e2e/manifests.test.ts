// Issue 4, end to end with the standalone source: the real agent on a --manifests directory,
// driven only by editing files, with real traffic through both paths. Malformed files (bad
// YAML, a bad field) are logged naming file, document, object and field, and the last good
// state is kept.
import t from 'tap';
import type { KubeObject, LogLine } from './agent-bed.js';
import { createAgentBed, expectNotAnswered, expectRefused, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';

const VIP = '10.96.0.30';
const HTTP = [{ name: 'http', port: 80 }];
const KEY = portKey('web', 'http');

t.test('agent + manifest directory + real traffic', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  const agent = bed.startAgent();
  await bed.waitForSynced();
  t.pass('agent synced on the manifest directory');
  const web = (svc: KubeObject, sl: KubeObject) => bed.writeManifest('web.yaml', [svc, sl]);

  await t.test('a new file with a Service and its slice → traffic flows on both paths', async (t) => {
    await web(service('web', VIP, HTTP), slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    await bed.waitForBackends(KEY, ['web-a', 'web-b'], 80);
    const r = await bed.bothPaths(VIP, 80, 20);
    expectServed(t, r['connect-time'], ['web-a', 'web-b'], 'connect-time', { all: true, vip: VIP, port: 80 });
    expectServed(t, r.tc, ['web-a', 'web-b'], 'TC path', { all: true });
  });

  await t.test('scale up by editing the slice', async (t) => {
    await web(service('web', VIP, HTTP), slice('web-1', 'web', ['web-a', 'web-b', 'web-c'], HTTP));
    await bed.waitForBackends(KEY, ['web-a', 'web-b', 'web-c']);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 30), ['web-a', 'web-b', 'web-c'], 'connect-time', { all: true });
    expectServed(t, await bed.traffic('tc', VIP, 80, 30), ['web-a', 'web-b', 'web-c'], 'TC path', { all: true });
  });

  await t.test('scale down by editing the slice', async (t) => {
    await web(service('web', VIP, HTTP), slice('web-1', 'web', ['web-b'], HTTP));
    await bed.waitForBackends(KEY, ['web-b']);
    const r = await bed.bothPaths(VIP, 80, 10);
    expectServed(t, r['connect-time'], ['web-b'], 'connect-time');
    expectServed(t, r.tc, ['web-b'], 'TC path');
  });

  await t.test('change the port in the file: the new port works, the old one is not answered', async (t) => {
    await web(service('web', VIP, [{ name: 'http', port: 8000 }]), slice('web-1', 'web', ['web-b'], HTTP));
    await bed.waitForServices('web on port 8000 only', (svcs) => {
      const s = svcs.find((x) => x.key === KEY);
      return s !== undefined && s.frontends.length === 1 && s.frontends[0]?.port === 8000;
    });
    const fresh = await bed.bothPaths(VIP, 8000, 5);
    expectServed(t, fresh['connect-time'], ['web-b'], 'connect-time on :8000', { vip: VIP, port: 8000 });
    expectServed(t, fresh.tc, ['web-b'], 'TC path on :8000');
    const old = await bed.bothPaths(VIP, 80, 2, 500);
    expectNotAnswered(t, old['connect-time'], 'connect-time on the old :80');
    expectNotAnswered(t, old.tc, 'TC path on the old :80');
    expectRefused(t, old['connect-time'], 'connect-time on the old :80');
    expectRefused(t, old.tc, 'TC path on the old :80');
  });

  await t.test('no endpoints in the slice: refused at once', async (t) => {
    await web(service('web', VIP, HTTP), slice('web-1', 'web', [], HTTP));
    await bed.waitForBackends(KEY, [], 80);
    const r = await bed.bothPaths(VIP, 80, 3);
    expectRefused(t, r['connect-time'], 'connect-time, no endpoints');
    expectRefused(t, r.tc, 'TC path, no endpoints');
  });

  await t.test('delete the file: the Service is unprogrammed', async (t) => {
    await bed.removeManifest('web.yaml');
    await bed.waitForServices('web gone', (svcs) => !svcs.some((s) => s.key === KEY));
    const r = await bed.bothPaths(VIP, 80, 2, 500);
    expectNotAnswered(t, r['connect-time'], 'connect-time after delete');
    expectNotAnswered(t, r.tc, 'TC path after delete');
  });

  await t.test('malformed files: logged with file, document, object and field; last good state kept', async (t) => {
    await web(service('web', VIP, HTTP), slice('web-1', 'web', ['web-a', 'web-b'], HTTP));
    const good = (await bed.waitForBackends(KEY, ['web-a', 'web-b'], 80)).find((s) => s.key === KEY)!;
    const errorFor = (file: string) => (l: LogLine) => l.level === 'error' && l.component === 'manifests' && String(l.file).endsWith(file);

    // A new file that is not YAML at all: logged, nothing else changes.
    let from = agent.logs.length;
    await bed.writeManifest('broken.yaml', ['kind: Service\nmetadata: {name: x\n  spec: [unclosed']);
    const yamlError = await agent.waitForLog(errorFor('broken.yaml'), 'the YAML error of broken.yaml', 10_000, from);
    t.match(String(yamlError.msg), /broken\.yaml/, 'the message names the file', { line: yamlError });
    t.match(String(yamlError.msg), /line \d+/, 'and the line', { line: yamlError });

    // A bad field in document 1 of web.yaml, and a good change in its document 2.
    from = agent.logs.length;
    const badService = service('web', VIP, HTTP);
    (badService.spec as { ports: { port: unknown }[] }).ports[0]!.port = 'eighty';
    await web(badService, slice('web-1', 'web', ['web-c'], HTTP));
    const fieldError = await agent.waitForLog(errorFor('web.yaml'), 'the bad field of web.yaml', 10_000, from);
    t.equal(fieldError.document, 1, 'names the document', { line: fieldError });
    t.equal(fieldError.kind, 'Service', 'names the kind');
    t.equal(fieldError.object, 'e2e/web', 'names the object');
    t.equal(fieldError.field, 'spec.ports[0].port', 'names the field');
    t.match(String(fieldError.msg), /web\.yaml \(document 1.*Service e2e\/web: spec\.ports\[0\]\.port:.*eighty/, 'one line says it all', { line: fieldError });
    // The rest of the file applies; the broken Service keeps its last good version.
    let svcs = await bed.waitForBackends(KEY, ['web-c'], 80);
    let now = svcs.find((s) => s.key === KEY)!;
    t.equal(now.svcId, good.svcId, 'the Service keeps its id');
    t.same(now.frontends, good.frontends, 'and its last good frontend (:80)');
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 5), ['web-c'], 'last good Service, new slice', { vip: VIP, port: 80 });

    // The whole of web.yaml unreadable: everything it held is kept.
    from = agent.logs.length;
    await bed.writeManifest('web.yaml', ['apiVersion: v1\nkind: Service\n  metadata: : :\n']);
    await agent.waitForLog(errorFor('web.yaml'), 'the YAML error of web.yaml', 10_000, from);
    svcs = await bed.services();
    now = svcs.find((s) => s.key === KEY)!;
    t.ok(now, 'web is still programmed');
    t.same(now?.backends.filter((b) => b.set === 'cluster').map((b) => b.ip), ['10.244.0.13'], 'with its last good backends');
    expectServed(t, await bed.traffic('tc', VIP, 80, 5), ['web-c'], 'web while its file is broken');

    // Fixed: the change applies and the agent says so.
    from = agent.logs.length;
    await web(service('web', VIP, HTTP), slice('web-1', 'web', ['web-a'], HTTP));
    await bed.waitForBackends(KEY, ['web-a'], 80);
    await agent.waitForLog((l) => /^fixed: .*web\.yaml/.test(l.msg ?? ''), 'the fixed line for web.yaml', 10_000, from);
    expectServed(t, await bed.traffic('connect-time', VIP, 80, 5), ['web-a'], 'after the fix');
    const status = await bed.status();
    t.equal(status.sync.state, 'synced', 'the agent stays synced throughout');
  });

  t.same(agent.otherOutput, [], 'the agent wrote only JSON log lines to stdout');
});
