// The real agent with a dual-stack Service (manifests source): both families' service ports are
// programmed — the IPv6 one in the IPv6 maps — and sluicectl lists both.
import t from 'tap';
import { createAgentBed, nodeObject, service, slice } from './agent-bed.js';

const VIP4 = '10.96.0.60';
const VIP6 = 'fd00:96::60';
const ONLY6 = 'fd00:96::61';
const HTTP = [{ name: 'http', port: 80 }];

t.test('a dual-stack Service is programmed in both families', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  const v6slice = slice('web-v6', 'web', ['web-a'], HTTP);
  v6slice.addressType = 'IPv6';
  (v6slice.endpoints as Array<{ addresses: string[] }>)[0]!.addresses = ['fd00:10:244::a'];
  await bed.writeManifest('web.yaml', [
    nodeObject(),
    service('web', VIP4, HTTP, { clusterIPs: [VIP4, VIP6], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack' }),
    slice('web-v4', 'web', ['web-a'], HTTP),
    v6slice,
  ]);
  bed.startAgent();
  const svcs = await bed.waitForServices('both families of e2e/web', (s) => s.filter((x) => x.name === 'web').length === 2, 60_000);
  const v6 = svcs.find((s) => s.family === 'IPv6');
  t.match(v6, { key: 'e2e/web:http/TCP/IPv6', frontends: [{ ip: VIP6, port: 80 }], backends: [{ ip: 'fd00:10:244::a' }] });
  t.match(svcs.find((s) => s.family === 'IPv4'), { frontends: [{ ip: VIP4, port: 80 }] });
  const maps = await bed.ctl<{ maps: Array<{ name: string; entries: number }> }>(['maps']);
  t.ok((maps.maps.find((m) => m.name === 'sl_frontends6')?.entries ?? 0) >= 1, 'sl_frontends6 holds the IPv6 frontend');
});

t.test('a single-stack IPv6 node (--ip-families IPv6): IPv6 Services programmed, IPv4 left alone, nothing fails for want of an IPv4 node address', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  // The Node as an IPv6-only cluster reports it: no IPv4 InternalIP.
  const node = nodeObject();
  node.status = { addresses: [{ type: 'InternalIP', address: 'fd00:50::1' }, { type: 'Hostname', address: node.metadata.name }] };
  const v6slice = (name: string, svc: string) => {
    const s = slice(name, svc, ['web-a'], HTTP);
    s.addressType = 'IPv6';
    (s.endpoints as Array<{ addresses: string[] }>)[0]!.addresses = ['fd00:10:244::a'];
    return s;
  };
  await bed.writeManifest('v6only.yaml', [
    node,
    service('api', ONLY6, HTTP, { clusterIPs: [ONLY6], ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' }),
    v6slice('api-v6', 'api'),
    // A dual-stack Service: only its IPv6 port is this node's to program.
    service('web', VIP4, HTTP, { clusterIPs: [VIP4, VIP6], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'PreferDualStack' }),
    slice('web-v4', 'web', ['web-a'], HTTP),
    v6slice('web-v6', 'web'),
  ]);
  const agent = bed.startAgent(['--ip-families', 'IPv6']);
  const svcs = await bed.waitForServices('the IPv6 service ports of e2e/api and e2e/web', (s) => s.filter((x) => x.family === 'IPv6').length === 2, 60_000);
  t.match(svcs.find((s) => s.name === 'api'), { key: 'e2e/api:http/TCP/IPv6', frontends: [{ ip: ONLY6, port: 80 }], backends: [{ ip: 'fd00:10:244::a' }] });
  t.match(svcs.find((s) => s.name === 'web'), { family: 'IPv6', frontends: [{ ip: VIP6, port: 80 }] });
  t.same(svcs.filter((s) => s.family === 'IPv4').map((s) => s.key), [], 'no IPv4 service port programmed');
  const maps = await bed.ctl<{ maps: Array<{ name: string; entries: number }> }>(['maps']);
  t.equal(maps.maps.find((m) => m.name === 'sl_frontends4')?.entries ?? 0, 0, 'sl_frontends4 is empty');
  t.ok((maps.maps.find((m) => m.name === 'sl_frontends6')?.entries ?? 0) >= 2, 'sl_frontends6 holds both IPv6 frontends');
  t.same(agent.find((l) => l.level === 'error' || l.level === 'fatal'), [], 'nothing logged as an error', { logs: agent.tail() });
  t.ok(agent.running, 'the agent runs on');
});
