// A UDP flow to a removed backend moves to a live one on the next datagram. The removed
// backend's server keeps running, so a stale entry anywhere (socket stickiness, conntrack,
// socket reverse NAT) would keep the flow there and fail the test; with it gone the next
// datagram must be answered by another backend, from the VIP.
import t from 'tap';
import type { Test } from 'tap';
import type { Bed, CtlbMode } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP = '10.96.0.30';
const PORT = 53;
const BACKEND_PORT = 5353;
const BACKENDS = ['be0', 'be1', 'be2'];

function service(bed: Bed, names: string[]) {
  const backends = names.map((n) => backendOf(bed.pod(n), BACKEND_PORT));
  return desiredState(clusterIpService({ name: 'dns', vip: VIP, port: PORT, protocol: 'UDP', backends }));
}

function onlyBackend(t: Test, results: Attempt[], what: string): string | undefined {
  const failed = results.filter((a) => !a.ok);
  t.equal(failed.length, 0, `${what}: every datagram answered (first failure: ${JSON.stringify(failed[0])})`);
  const seen = new Set(results.map((a) => a.backend));
  t.equal(seen.size, 1, `${what}: one backend for the whole flow (${[...seen].join(',')})`);
  for (const a of results) t.equal(a.from, `${VIP}:${PORT}`, `${what}: reply from the VIP`);
  return results[0]?.backend;
}

async function failover(t: Test, ctlb: CtlbMode, tc: boolean, connected: boolean): Promise<void> {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb, tc });
  if (!bed) return;
  await bed.startBackends(BACKENDS, BACKEND_PORT);
  bed.writer.apply(service(bed, BACKENDS));
  const target = { host: VIP, port: PORT };
  const socket = 'flow';

  const first = onlyBackend(t, await bed.client.udp(target, 5, { socket, connected }), 'before the removal');
  t.ok(first, 'the flow has a backend');
  bed.writer.apply(service(bed, BACKENDS.filter((n) => n !== first)));

  const [next] = await bed.client.udp(target, 1, { socket, connected });
  t.ok(next?.ok, `the next datagram is answered: ${JSON.stringify(next)}`);
  t.not(next?.backend, first, `it moved off the removed backend ${first} (now ${next?.backend})`);
  t.equal(next?.from, `${VIP}:${PORT}`, 'the reply still comes from the VIP');

  const after = onlyBackend(t, await bed.client.udp(target, 5, { socket, connected }), 'after the move');
  t.equal(after, next?.backend, 'the flow stays on its new backend');
  await bed.client.closeUdp(socket);
}

/**
 * A connected UDP socket keeps the backend connect() gave it in the kernel. The writer's socket
 * sweep (bpf/sockdestroy.bpf.c) closes it when its backend leaves: the next send fails at once
 * (not a silent timeout), and the socket the application opens instead lands on a live backend.
 */
async function connectedSweep(t: Test, bed: Bed): Promise<void> {
  await bed.startBackends(BACKENDS, BACKEND_PORT);
  bed.writer.apply(service(bed, BACKENDS));
  const target = { host: VIP, port: PORT };
  const first = onlyBackend(t, await bed.client.udp(target, 5, { socket: 'old', connected: true }), 'before the removal');
  bed.writer.apply(service(bed, BACKENDS.filter((n) => n !== first)));

  const [stale] = await bed.client.udp({ ...target, timeoutMs: 2000 }, 1, { socket: 'old', connected: true });
  t.notOk(stale?.ok, `the old socket no longer reaches the removed backend: ${JSON.stringify(stale)}`);
  t.not(stale?.code, 'ETIMEDOUT', 'it fails with an error, not a silent timeout');
  await bed.client.closeUdp('old');

  const moved = onlyBackend(t, await bed.client.udp(target, 5, { socket: 'new', connected: true }), 'a new socket');
  t.ok(moved && moved !== first, `the new socket landed on a live backend (${moved}, removed ${first})`);
  await bed.client.closeUdp('new');
}

t.test('connect-time, connected socket (closed by the socket sweep)', async (t) => {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'tcp+udp', tc: false, udpSocketSweep: true });
  if (!bed) return;
  if (bed.sweepsUdpSockets) {
    await t.test('moves to a live backend', (t) => connectedSweep(t, bed));
  } else {
    await t.todo('moves to a live backend (needs NativeProgram.runIterator in the addon to run the sweep)', (t) => connectedSweep(t, bed));
  }
});
t.test('connect-time, unconnected socket (sendmsg4 stickiness)', (t) => failover(t, 'tcp+udp', false, false));
t.test('TC path, unconnected socket (conntrack flushed)', (t) => failover(t, 'off', true, false));
t.test('TC path, connected socket (conntrack flushed)', (t) => failover(t, 'off', true, true));
