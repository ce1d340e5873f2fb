// IPv6 over the TC path with real sockets: no connect-time program, the TC programs on every pod
// veth, so every success is sl_tc_from_pod6/sl_tc_to_pod6's (the node namespace has no route
// for the VIP). Neighbour discovery between the pods and the node crosses the same programs.
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { CT_TYPE, ctValue6 } from '../../src/bpf/sluice-structs.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP6 = 'fd00:96::30';
const TCP_PORT = 80;
const UDP_PORT = 53;
const BACKEND_PORT = 8080;
const BACKENDS = ['be0', 'be1'];

const describe = (a: Attempt | undefined): string => JSON.stringify(a);
const addrOf = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.slice(0, s.lastIndexOf(':')));

const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'off', tc: true, ipv6: true });
if (bed) {
  await bed.startBackends(BACKENDS, BACKEND_PORT, '::');
  const be6 = BACKENDS.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6'));
  bed.writer.apply(desiredState(
    clusterIpService({ name: 'web', family: 'IPv6', vip: VIP6, port: TCP_PORT, protocol: 'TCP', backends: be6 }),
    clusterIpService({ name: 'dns', family: 'IPv6', vip: VIP6, port: UDP_PORT, protocol: 'UDP', backends: be6 }),
  ));
  const client6 = bed.clientPod.ip6;

  await t.test('TCP to an IPv6 ClusterIP through TC: the backend sees the pod, the pod sees the VIP', async (t) => {
    const results = await bed.client.tcp({ host: VIP6, port: TCP_PORT, timeoutMs: 5000 }, 10);
    for (const a of results) {
      t.ok(a.ok, `connection succeeded: ${describe(a)}`);
      t.equal(addrOf(a.peer), client6, 'the backend saw the client pod IPv6 address');
      t.equal(a.remote, `${VIP6}:${TCP_PORT}`, 'the socket is connected to the VIP');
    }
  });

  await t.test('UDP to an IPv6 ClusterIP through TC: the answer comes from the VIP', async (t) => {
    const results = await bed.client.udp({ host: VIP6, port: UDP_PORT, timeoutMs: 5000 }, 3);
    for (const a of results) {
      t.ok(a.ok, `datagram answered: ${describe(a)}`);
      t.equal(addrOf(a.peer), client6);
      t.equal(a.from, `${VIP6}:${UDP_PORT}`, 'recvfrom() reports the VIP');
    }
  });

  await t.test('the flows are in sl_ct6', async (t) => {
    const map = loadNative().openPinnedMap(`${bed.pinDir}/sl_ct6`);
    t.teardown(() => map.close());
    const forward = map.keys().map((k) => map.lookup(k)).filter((v): v is Buffer => v !== null)
      .map((v) => ctValue6.decode(v)).filter((v) => v.type === CT_TYPE.FORWARD);
    t.ok(forward.length >= 11, `${forward.length} FORWARD entries (10 TCP connections, a UDP flow)`);
  });
}
