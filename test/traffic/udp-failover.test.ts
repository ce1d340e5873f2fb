// A UDP flow to a removed backend moves to a live one on the next datagram. The removed
// backend's server keeps running, so a stale entry anywhere (socket stickiness, conntrack,
// socket reverse NAT) would keep the flow there and fail the test; with it gone the next
// datagram must be answered by another backend, from the VIP. A connected socket under
// connect-time balancing is the exception: its kernel destination is the backend itself, so the
// writer's socket sweep must close it (and without the sweep it stays: the negative control).
// The failover scenarios run in dual stack (issue 16): the Service has a port per family over the
// same pods, one client holds a flow to each VIP, and the removed pods leave both families; on
// the TC path their IPv6 conntrack entries (sl_ct6) must be gone. (The sweep of connected IPv6
// sockets is in ipv6-connect-time.test.ts.)
import t from 'tap';
import type { Test } from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { CT_TYPE, ctKey6, ctValue6, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { Bed, CtlbMode, ServiceWriter } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP = '10.96.0.30';
const VIP6 = 'fd00:96::30';
const PORT = 53;
const BACKEND_PORT = 5353;
const BACKENDS = ['be0', 'be1', 'be2'];

function service(bed: Bed, names: string[]) {
  const backends = names.map((n) => backendOf(bed.pod(n), BACKEND_PORT));
  return desiredState(clusterIpService({ name: 'dns', vip: VIP, port: PORT, protocol: 'UDP', backends }));
}

/** The dual-stack Service: a UDP port per family, each over the named pods' addresses of its family. */
function dualService(bed: Bed, names: string[]) {
  return desiredState(
    clusterIpService({ name: 'dns', vip: VIP, port: PORT, protocol: 'UDP', backends: names.map((n) => backendOf(bed.pod(n), BACKEND_PORT)) }),
    clusterIpService({ name: 'dns', family: 'IPv6', vip: VIP6, port: PORT, protocol: 'UDP', backends: names.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6')) }),
  );
}

function onlyBackend(t: Test, results: Attempt[], what: string, vip = VIP): string | undefined {
  const failed = results.filter((a) => !a.ok);
  t.equal(failed.length, 0, `${what}: every datagram answered (first failure: ${JSON.stringify(failed[0])})`);
  const seen = new Set(results.map((a) => a.backend));
  t.equal(seen.size, 1, `${what}: one backend for the whole flow (${[...seen].join(',')})`);
  for (const a of results) t.equal(a.from, `${vip}:${PORT}`, `${what}: reply from the VIP`);
  return results[0]?.backend;
}

/** sl_ct6 entries (both directions) of UDP flows whose backend is one of `addrs`. */
function ct6EntriesOf(bed: Bed, addrs: string[]): number {
  const map = loadNative().openPinnedMap(`${bed.pinDir}/sl_ct6`);
  try {
    let n = 0;
    for (const k of map.keys()) {
      const raw = map.lookup(k);
      if (!raw) continue;
      const [key, v] = [ctKey6.decode(k), ctValue6.decode(raw)];
      const backend = v.type === CT_TYPE.FORWARD ? v.nat_addr : v.type === CT_TYPE.REVERSE ? key.saddr : undefined;
      if (key.proto === IPPROTO.UDP && backend !== undefined && addrs.includes(backend)) n++;
    }
    return n;
  } finally {
    map.close();
  }
}

/**
 * One long UDP flow per family from the client pod to the dual-stack Service; the pods the two
 * flows landed on are removed (from both families, as a deleted pod leaves both); each flow's next
 * datagram must be answered by a live backend, from its own VIP.
 */
async function failover(t: Test, ctlb: CtlbMode, tc: boolean, connected: boolean): Promise<void> {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb, tc, ipv6: true });
  if (!bed) return;
  await bed.startBackends(BACKENDS, BACKEND_PORT, '::');
  bed.writer.apply(dualService(bed, BACKENDS));
  const flows = [
    { family: 'IPv4', vip: VIP, socket: 'flow4' },
    { family: 'IPv6', vip: VIP6, socket: 'flow6' },
  ] as const;
  const target = (vip: string) => ({ host: vip, port: PORT });

  const first: Record<string, string | undefined> = {};
  for (const f of flows) {
    first[f.family] = onlyBackend(t, await bed.client.udp(target(f.vip), 5, { socket: f.socket, connected }), `${f.family}: before the removal`, f.vip);
    t.ok(first[f.family], `${f.family}: the flow has a backend`);
  }
  const removed = [...new Set([first.IPv4, first.IPv6])].filter((n): n is string => n !== undefined);
  const removed6 = removed.map((n) => bed.pod(n).ip6 as string);
  if (tc) t.ok(ct6EntriesOf(bed, removed6) >= 2, `sl_ct6 holds the IPv6 flow to ${first.IPv6} (both directions)`);
  bed.writer.apply(dualService(bed, BACKENDS.filter((n) => !removed.includes(n))));
  if (tc) t.equal(ct6EntriesOf(bed, removed6), 0, `no sl_ct6 UDP entry names a removed backend (${removed6.join(', ')})`);

  for (const f of flows) {
    const [next] = await bed.client.udp(target(f.vip), 1, { socket: f.socket, connected });
    t.ok(next?.ok, `${f.family}: the next datagram is answered: ${JSON.stringify(next)}`);
    t.notOk(removed.includes(next?.backend ?? ''), `${f.family}: it moved off the removed backends ${removed.join(', ')} (now ${next?.backend})`);
    t.equal(next?.from, `${f.vip}:${PORT}`, `${f.family}: the reply still comes from its VIP`);

    const after = onlyBackend(t, await bed.client.udp(target(f.vip), 5, { socket: f.socket, connected }), `${f.family}: after the move`, f.vip);
    t.equal(after, next?.backend, `${f.family}: the flow stays on its new backend`);
    await bed.client.closeUdp(f.socket);
  }
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
t.test('connect-time, unconnected socket (sendmsg4/sendmsg6 stickiness)', (t) => failover(t, 'tcp+udp', false, false));
t.test('TC path, unconnected socket (sl_ct4 and sl_ct6 flushed)', (t) => failover(t, 'off', true, false));
t.test('TC path, connected socket (sl_ct4 and sl_ct6 flushed)', (t) => failover(t, 'off', true, true));
