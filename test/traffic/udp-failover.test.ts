// A UDP flow to a removed backend moves to a live one on the next datagram. The removed
// backend's server keeps running, so a stale entry anywhere (socket stickiness, conntrack,
// socket reverse NAT) would keep the flow there and fail the test; with it gone the next
// datagram must be answered by another backend, from the VIP. A connected socket under
// connect-time balancing is the exception: its kernel destination is the backend itself, so the
// writer's socket sweep must close it (and without the sweep it stays: the negative control).
import t from 'tap';
import type { Test } from 'tap';
import { Datapath } from '../../src/datapath/datapath.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { Bed, CtlbMode, ServiceWriter } from './bed.js';
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
 * The agent's wiring of the socket sweep, over the bed's pinned maps: a Datapath loaded with
 * `udpSocketSweep` (limited to the bed's namespaces: a test never sweeps the machine's) and a
 * writer given `datapath.udpSocketSweep`, exactly as src/agent does. Null (skip, or a failure
 * under CI) when the kernel cannot destroy sockets (bpf_sock_destroy needs 6.5).
 */
async function sweepingWriter(t: Test, bed: Bed): Promise<{ writer: ServiceWriter; sweeps: () => number } | null> {
  const namespaces = [bed.topo.nodeNs, ...bed.topo.pods.map((p) => p.ns)].map(netnsPath);
  const datapath = await Datapath.load({ pinDir: bed.pinDir, connectTimeLb: 'tcp-udp', udpSocketSweep: { namespaces: () => namespaces } });
  t.teardown(() => datapath.close());
  if (!datapath.udpSocketSweep) {
    const why = 'this kernel cannot destroy sockets from BPF (bpf_sock_destroy, Linux >= 6.5)';
    if (process.env.CI === 'true') t.fail(why);
    else t.plan(0, why);
    return null;
  }
  const tableWriter = new ServiceTableWriter({ tables: datapath.tables, udpSocketSweep: datapath.udpSocketSweep });
  const writer: ServiceWriter = {
    apply(desired) {
      const res = tableWriter.apply(desired);
      if (res.errors.length > 0) throw new Error(`service-table writer: ${res.errors.map((e) => e.message).join('; ')}`);
    },
  };
  return { writer, sweeps: () => datapath.udpSocketSweeper?.stats().sweeps ?? 0 };
}

/** Opens named connected sockets until one lands on a backend other than `avoid`; closes the rest. */
async function socketOnOtherBackend(t: Test, bed: Bed, avoid: string): Promise<string | undefined> {
  const target = { host: VIP, port: PORT };
  for (let i = 0; i < 20; i++) {
    const name = `keep${i}`;
    const [a] = await bed.client.udp(target, 1, { socket: name, connected: true });
    if (a?.ok && a.backend !== avoid) return name;
    await bed.client.closeUdp(name);
  }
  t.fail(`20 connected sockets all landed on ${avoid}`);
  return undefined;
}

/**
 * A connected UDP socket keeps the backend connect() gave it in the kernel. The writer's socket
 * sweep (bpf/sockdestroy.bpf.c) closes it when its backend leaves: the next send fails at once
 * (not a silent timeout), and the socket the application opens instead lands on a live backend.
 * Sockets on backends that stay are left alone, and the removed backend never answers again.
 */
async function connectedSweep(t: Test, bed: Bed, writer: ServiceWriter, sweeps: () => number): Promise<void> {
  await bed.startBackends(BACKENDS, BACKEND_PORT);
  writer.apply(service(bed, BACKENDS));
  const target = { host: VIP, port: PORT };
  const before = await bed.client.udp(target, 5, { socket: 'old', connected: true });
  const first = onlyBackend(t, before, 'before the removal');
  t.equal(before[0]?.remote, `${VIP}:${PORT}`, 'the old socket is connected to the VIP (as getpeername reports it)');
  const keep = first ? await socketOnOtherBackend(t, bed, first) : undefined;
  const [kept] = keep ? await bed.client.udp(target, 1, { socket: keep, connected: true }) : [];

  writer.apply(service(bed, BACKENDS.filter((n) => n !== first)));
  t.equal(sweeps(), 1, 'the writer ran the sweep once, for the removed UDP backend');

  // The kernel aborted the socket (udp_abort): it is disconnected, so getpeername() fails and a
  // send() without an address fails (EDESTADDRREQ; recv() reports ECONNABORTED once). client.mjs
  // notices the lost peer and reports the send as ERR_SOCKET_DGRAM_IS_CONNECTED; either way the
  // application learns at once, instead of waiting on a backend that is gone.
  const [stale] = await bed.client.udp({ ...target, timeoutMs: 2000 }, 1, { socket: 'old', connected: true });
  t.notOk(stale?.ok, `the old socket no longer reaches the removed backend: ${JSON.stringify(stale)}`);
  t.not(stale?.code, 'ETIMEDOUT', 'it fails with an error, not a silent timeout');
  t.ok(stale !== undefined && stale.ms < 1000, `at once (${stale?.ms} ms)`);
  t.equal(stale?.remote, undefined, 'the kernel disconnected it (getpeername fails)');
  await bed.client.closeUdp('old');

  if (keep) {
    const after = await bed.client.udp(target, 3, { socket: keep, connected: true });
    t.same(after.map((a) => [a.ok, a.backend, a.from]), Array(3).fill([true, kept?.backend, `${VIP}:${PORT}`]), `a socket on a backend that stays (${kept?.backend}) is left alone`);
    await bed.client.closeUdp(keep);
  }

  const moved = onlyBackend(t, await bed.client.udp(target, 5, { socket: 'new', connected: true }), 'a new socket');
  t.ok(moved && moved !== first, `the new socket landed on a live backend (${moved}, removed ${first})`);
  await bed.client.closeUdp('new');

  const fresh: Attempt[] = [];
  for (let i = 0; i < 12; i++) fresh.push(...(await bed.client.udp(target, 1, { connected: true })));
  t.same(fresh.filter((a) => !a.ok || a.backend === first), [], `12 fresh connected sockets: all answered, none by ${first}`);
}

/**
 * The negative control: the same removal through a writer without the sweep. The connected
 * socket keeps its kernel destination and goes on talking to the removed backend, whose server
 * still runs: the sweep is what moves it, and the test above can fail.
 */
async function connectedNoSweep(t: Test, bed: Bed): Promise<void> {
  await bed.startBackends(BACKENDS, BACKEND_PORT);
  bed.writer.apply(service(bed, BACKENDS));
  const target = { host: VIP, port: PORT };
  const first = onlyBackend(t, await bed.client.udp(target, 5, { socket: 'old', connected: true }), 'before the removal');
  bed.writer.apply(service(bed, BACKENDS.filter((n) => n !== first)));
  const after = await bed.client.udp(target, 3, { socket: 'old', connected: true });
  t.same(after.map((a) => [a.ok, a.backend]), Array(3).fill([true, first]), `without the sweep the socket stays on the removed backend ${first}`);
  await bed.client.closeUdp('old');
}

t.test('connect-time, connected socket (closed by the socket sweep)', async (t) => {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'tcp+udp', tc: false });
  if (!bed) return;
  const sweeping = await sweepingWriter(t, bed);
  if (!sweeping) return;
  await connectedSweep(t, bed, sweeping.writer, sweeping.sweeps);
});
t.test('connect-time, connected socket without the sweep (negative control: stays on the removed backend)', async (t) => {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'tcp+udp', tc: false });
  if (!bed) return;
  t.equal(bed.sweepsUdpSockets, false, 'the bed writer has no sweep');
  await connectedNoSweep(t, bed);
});
t.test('connect-time, unconnected socket (sendmsg4 stickiness)', (t) => failover(t, 'tcp+udp', false, false));
t.test('TC path, unconnected socket (conntrack flushed)', (t) => failover(t, 'off', true, false));
t.test('TC path, connected socket (conntrack flushed)', (t) => failover(t, 'off', true, true));
