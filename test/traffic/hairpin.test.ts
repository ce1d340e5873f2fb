// Hairpin: a pod that reaches its own service and lands on itself gets its answer, with
// connect-time load balancing and on the TC path (which must translate the source too, or
// the pod would drop a reply "from itself" to itself).
import t from 'tap';
import type { Test } from 'tap';
import type { CtlbMode } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';

const SELF_VIP = '10.96.0.40';
const MIXED_VIP = '10.96.0.41';
const PORT = 80;
const BACKEND_PORT = 8080;

async function hairpin(t: Test, ctlb: CtlbMode, tc: boolean): Promise<void> {
  const bed = await createBed(t, { pods: ['client', 'be0'], ctlb, tc });
  if (!bed) return;
  await bed.startBackends(['client', 'be0'], BACKEND_PORT);
  const self = backendOf(bed.clientPod, BACKEND_PORT);
  const other = backendOf(bed.pod('be0'), BACKEND_PORT);
  const services = [];
  for (const protocol of ['TCP', 'UDP'] as const) {
    services.push(
      clusterIpService({ name: `self-${protocol.toLowerCase()}`, vip: SELF_VIP, port: PORT, protocol, backends: [self] }),
      clusterIpService({ name: `mixed-${protocol.toLowerCase()}`, vip: MIXED_VIP, port: PORT, protocol, backends: [self, other] }),
    );
  }
  bed.writer.apply(desiredState(...services));

  await t.test('TCP to a service whose only backend is the client itself', async (t) => {
    const results = await bed.client.tcp({ host: SELF_VIP, port: PORT }, 5);
    for (const a of results) {
      t.ok(a.ok, `answered: ${JSON.stringify(a)}`);
      t.equal(a.backend, 'client', 'by the client pod itself');
      t.equal(a.remote, `${SELF_VIP}:${PORT}`, 'getpeername() reports the VIP');
    }
  });

  await t.test('UDP to a service whose only backend is the client itself', async (t) => {
    for (const connected of [false, true]) {
      const results = await bed.client.udp({ host: SELF_VIP, port: PORT }, 3, { connected });
      for (const a of results) {
        t.ok(a.ok, `${connected ? 'connected' : 'unconnected'}: answered: ${JSON.stringify(a)}`);
        t.equal(a.backend, 'client', 'by the client pod itself');
        t.equal(a.from, `${SELF_VIP}:${PORT}`, 'recvfrom() reports the VIP');
      }
    }
  });

  await t.test('a service mixing the client and another pod: every connection answered', async (t) => {
    const results = await bed.client.tcp({ host: MIXED_VIP, port: PORT }, 40);
    const failed = results.filter((a) => !a.ok);
    t.equal(failed.length, 0, `no failures (first: ${JSON.stringify(failed[0])})`);
    const seen = new Set(results.map((a) => a.backend));
    t.same([...seen].sort(), ['be0', 'client'], 'both the client itself and the other pod answered');
  });
}

t.test('connect-time load balancing', (t) => hairpin(t, 'tcp+udp', false));
t.test('TC path', (t) => hairpin(t, 'off', true));
