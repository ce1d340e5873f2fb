// The real agent with a dual-stack Service (manifests source): both families' service ports are
// programmed — the IPv6 one in the IPv6 maps — and sluicectl lists both.
import t from 'tap';
import { createAgentBed, nodeObject, service, slice } from './agent-bed.js';

const VIP4 = '10.96.0.60';
const VIP6 = 'fd00:96::60';
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
