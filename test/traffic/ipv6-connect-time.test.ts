// IPv6 and dual stack at connect time, with real sockets (connect6, sendmsg6, recvmsg6,
// getpeername6): the pods have IPv4 and IPv6 addresses, no TC program is attached, and the node
// namespace has no route for a VIP, so every success here is the connect-time path's. Last, the
// UDP socket sweep (bpf/sockdestroy.bpf.c) for IPv6 and IPv4-mapped connected sockets.
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { sockRevnatValue6 } from '../../src/bpf/sluice-structs.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { Test } from 'tap';
import type { Bed } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP6 = 'fd00:96::10';
const EMPTY_VIP6 = 'fd00:96::11';
const DUAL_VIP4 = '10.96.0.20';
const DUAL_VIP6 = 'fd00:96::20';
const SWEEP_VIP6 = 'fd00:96::40';
const SWEEP_VIP4 = '10.96.0.40';
const SWEEP_MAPPED = `::ffff:${SWEEP_VIP4}`;
const TCP_PORT = 80;
const UDP_PORT = 53;
const BACKEND_PORT = 8080;
const BACKENDS = ['be0', 'be1'];
/** A refused connect must fail well before any retransmission timer would fire. */
const FAST_REFUSAL_MS = 100;

const describe = (a: Attempt | undefined): string => JSON.stringify(a);
/** The address of "addr:port" (an IPv6 address has colons of its own). */
const addrOf = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.slice(0, s.lastIndexOf(':')));

/** The sweep scenario's services: a UDP port per family, each over the named backends. */
function sweepServices(bed: Bed, names6: string[], names4: string[]) {
  return desiredState(
    clusterIpService({ name: 'sweep', family: 'IPv6', vip: SWEEP_VIP6, port: UDP_PORT, protocol: 'UDP', backends: names6.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6')) }),
    clusterIpService({ name: 'sweep', vip: SWEEP_VIP4, port: UDP_PORT, protocol: 'UDP', backends: names4.map((n) => backendOf(bed.pod(n), BACKEND_PORT)) }),
  );
}

function oneBackend(t: Test, results: Attempt[], from: string, what: string): string | undefined {
  t.same(results.filter((a) => !a.ok), [], `${what}: every datagram answered`);
  t.equal(new Set(results.map((a) => a.backend)).size, 1, `${what}: one backend`);
  for (const a of results) t.equal(a.from, from, `${what}: reply from the VIP`);
  return results[0]?.backend;
}

const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'tcp+udp', tc: false, ipv6: true });
if (bed) {
  // One listener per backend on :: serves both families (an IPv4 peer shows as ::ffff:a.b.c.d).
  await bed.startBackends(BACKENDS, BACKEND_PORT, '::');
  const be6 = BACKENDS.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6'));
  const be4 = BACKENDS.map((n) => backendOf(bed.pod(n), BACKEND_PORT));
  bed.writer.apply(desiredState(
    clusterIpService({ name: 'web', family: 'IPv6', vip: VIP6, port: TCP_PORT, protocol: 'TCP', backends: be6 }),
    clusterIpService({ name: 'dns', family: 'IPv6', vip: VIP6, port: UDP_PORT, protocol: 'UDP', backends: be6 }),
    clusterIpService({ name: 'empty', family: 'IPv6', vip: EMPTY_VIP6, port: TCP_PORT, protocol: 'TCP', backends: [] }),
    clusterIpService({ name: 'empty-udp', family: 'IPv6', vip: EMPTY_VIP6, port: UDP_PORT, protocol: 'UDP', backends: [] }),
    // A dual-stack Service: one port per family, each with the backends' addresses of its family.
    clusterIpService({ name: 'dual', vip: DUAL_VIP4, port: TCP_PORT, protocol: 'TCP', backends: be4 }),
    clusterIpService({ name: 'dual', family: 'IPv6', vip: DUAL_VIP6, port: TCP_PORT, protocol: 'TCP', backends: be6 }),
    clusterIpService({ name: 'dual-udp', vip: DUAL_VIP4, port: UDP_PORT, protocol: 'UDP', backends: be4 }),
    clusterIpService({ name: 'dual-udp', family: 'IPv6', vip: DUAL_VIP6, port: UDP_PORT, protocol: 'UDP', backends: be6 }),
  ));
  const client4 = bed.clientPod.ip;
  const client6 = bed.clientPod.ip6;
  const names = new Set(BACKENDS);

  await t.test('TCP to an IPv6 ClusterIP reaches a backend that sees the pod IPv6; getpeername is the VIP', async (t) => {
    const results = await bed.client.tcp({ host: VIP6, port: TCP_PORT }, 20);
    for (const a of results) {
      t.ok(a.ok, `connection succeeded: ${describe(a)}`);
      t.ok(a.backend && names.has(a.backend), `answered by a backend (${a.backend})`);
      t.equal(addrOf(a.peer), client6, 'the backend saw the client pod IPv6 address');
      t.equal(a.remote, `${VIP6}:${TCP_PORT}`, 'getpeername() reports the VIP');
    }
    t.equal(new Set(results.map((a) => a.backend)).size, 2, 'connections spread over both backends');
  });

  await t.test('UDP to an IPv6 ClusterIP, unconnected and connected; recvfrom reports the VIP', async (t) => {
    const results = await bed.client.udp({ host: VIP6, port: UDP_PORT }, 3);
    for (const a of results) {
      t.ok(a.ok, `datagram answered: ${describe(a)}`);
      t.equal(addrOf(a.peer), client6, 'the backend saw the client pod IPv6 address');
      t.equal(a.from, `${VIP6}:${UDP_PORT}`, 'recvfrom() reports the VIP');
    }
    t.equal(new Set(results.map((a) => a.backend)).size, 1, 'one socket keeps its backend');
    const [c] = await bed.client.udp({ host: VIP6, port: UDP_PORT }, 1, { connected: true });
    t.ok(c?.ok, `connected datagram answered: ${describe(c)}`);
    t.equal(c?.remote, `${VIP6}:${UDP_PORT}`, 'getpeername() reports the VIP');
    t.equal(c?.from, `${VIP6}:${UDP_PORT}`, 'recvfrom() reports the VIP');
  });

  await t.test('an IPv6 service without endpoints, and an IPv6 ClusterIP port it does not serve, are refused fast', async (t) => {
    for (const [host, port] of [[EMPTY_VIP6, TCP_PORT], [VIP6, 81]] as const) {
      const [a] = await bed.client.tcp({ host, port, timeoutMs: 3000 });
      t.equal(a?.code, 'ECONNREFUSED', `connect() to [${host}]:${port} refused: ${describe(a)}`);
      t.ok((a?.ms ?? Infinity) < FAST_REFUSAL_MS, `within ${FAST_REFUSAL_MS} ms (took ${a?.ms} ms)`);
    }
    const [u] = await bed.client.udp({ host: EMPTY_VIP6, port: UDP_PORT, timeoutMs: 3000 }, 1, { connected: true });
    t.equal(u?.code, 'ECONNREFUSED', `UDP to it is refused: ${describe(u)}`);
  });

  await t.test('a dual-stack Service from one client: each family reaches its backends, each reply from its VIP', async (t) => {
    const [a4] = await bed.client.tcp({ host: DUAL_VIP4, port: TCP_PORT });
    const [a6] = await bed.client.tcp({ host: DUAL_VIP6, port: TCP_PORT });
    t.ok(a4?.ok && a6?.ok, `both connected: ${describe(a4)} ${describe(a6)}`);
    t.equal(addrOf(a4?.peer), `::ffff:${client4}`, 'over IPv4 the backend saw the pod IPv4 address');
    t.equal(addrOf(a6?.peer), client6, 'over IPv6 the backend saw the pod IPv6 address');
    t.equal(a4?.remote, `${DUAL_VIP4}:${TCP_PORT}`, 'the IPv4 socket is connected to the IPv4 VIP');
    t.equal(a6?.remote, `${DUAL_VIP6}:${TCP_PORT}`, 'the IPv6 socket is connected to the IPv6 VIP');
    const [u4] = await bed.client.udp({ host: DUAL_VIP4, port: UDP_PORT });
    const [u6] = await bed.client.udp({ host: DUAL_VIP6, port: UDP_PORT });
    t.equal(u4?.from, `${DUAL_VIP4}:${UDP_PORT}`, `the IPv4 reply comes from the IPv4 VIP: ${describe(u4)}`);
    t.equal(u6?.from, `${DUAL_VIP6}:${UDP_PORT}`, `the IPv6 reply comes from the IPv6 VIP: ${describe(u6)}`);
  });

  await t.test('an IPv6 socket to an IPv4-mapped VIP is translated by the IPv4 rules', async (t) => {
    const mapped = `::ffff:${DUAL_VIP4}`;
    const [a] = await bed.client.tcp({ host: mapped, port: TCP_PORT });
    t.ok(a?.ok, `connected: ${describe(a)}`);
    t.equal(addrOf(a?.peer), `::ffff:${client4}`, 'the backend saw an IPv4 connection from the pod');
    t.equal(a?.remote, `${mapped}:${TCP_PORT}`, 'getpeername() reports the mapped VIP');
    const [u] = await bed.client.udp({ host: mapped, port: UDP_PORT });
    t.ok(u?.ok, `datagram answered: ${describe(u)}`);
    t.equal(u?.from, `${mapped}:${UDP_PORT}`, 'recvfrom() reports the mapped VIP');
  });

  await t.test('IPv6 flows are recorded in the IPv6 socket reverse-NAT map', async (t) => {
    const map = loadNative().openPinnedMap(`${bed.pinDir}/sl_sock_revnat6`);
    t.teardown(() => map.close());
    const frontends = new Set<string>();
    for (const k of map.keys()) {
      const v = map.lookup(k);
      if (v) frontends.add(sockRevnatValue6.decode(v).frontend_addr);
    }
    t.ok(frontends.has(VIP6) && frontends.has(DUAL_VIP6), `sl_sock_revnat6 names the IPv6 VIPs: ${[...frontends].join(', ')}`);
    t.notOk(frontends.has(`::ffff:${DUAL_VIP4}`), 'an IPv4-mapped flow is not an IPv6 one');
  });

  // Last: the sweeping writer below takes the maps over from the bed's writer (it adopts what is
  // programmed and keeps only its own two services).
  await t.test('the UDP socket sweep closes connected IPv6 and IPv4-mapped sockets of a removed backend', async (t) => {
    const namespaces = [bed.topo.nodeNs, ...bed.topo.pods.map((p) => p.ns)].map(netnsPath);
    const datapath = await Datapath.load({ pinDir: bed.pinDir, connectTimeLb: 'tcp-udp', udpSocketSweep: { namespaces: () => namespaces } });
    t.teardown(() => datapath.close());
    if (!datapath.udpSocketSweep) {
      const why = 'this kernel cannot destroy sockets from BPF (bpf_sock_destroy, Linux >= 6.5)';
      if (process.env.CI === 'true') t.fail(why);
      else t.plan(0, why);
      return;
    }
    // The removed backends' servers keep running: a socket left alone would still be answered.
    const writer = new ServiceTableWriter({ tables: datapath.tables, tables6: datapath.tables6, udpSocketSweep: datapath.udpSocketSweep });
    const apply = (d: ReturnType<typeof sweepServices>) => t.same(writer.apply(d).errors, [], 'written without errors');
    apply(sweepServices(bed, BACKENDS, BACKENDS));

    const v6 = { host: SWEEP_VIP6, port: UDP_PORT, timeoutMs: 2000 };
    const mapped = { host: SWEEP_MAPPED, port: UDP_PORT, timeoutMs: 2000 };
    const first6 = oneBackend(t, await bed.client.udp(v6, 3, { socket: 'old6', connected: true }), `${SWEEP_VIP6}:${UDP_PORT}`, 'IPv6 socket');
    const first4 = oneBackend(t, await bed.client.udp(mapped, 3, { socket: 'old4', connected: true }), `${SWEEP_MAPPED}:${UDP_PORT}`, 'IPv4-mapped socket');
    // An IPv6 socket on a backend that stays.
    let keep: string | undefined;
    let kept: Attempt | undefined;
    for (let i = 0; i < 20 && !keep; i++) {
      const [a] = await bed.client.udp(v6, 1, { socket: `keep${i}`, connected: true });
      if (a?.ok && a.backend !== first6) [keep, kept] = [`keep${i}`, a];
      else await bed.client.closeUdp(`keep${i}`);
    }
    t.ok(keep, 'a second IPv6 socket landed on another backend');

    apply(sweepServices(bed, BACKENDS.filter((n) => n !== first6), BACKENDS.filter((n) => n !== first4)));
    t.ok((datapath.udpSocketSweeper?.stats().sweeps ?? 0) >= 1, 'the writer ran the sweep');

    for (const [socket, target, what] of [['old6', v6, 'IPv6'], ['old4', mapped, 'IPv4-mapped']] as const) {
      const [stale] = await bed.client.udp(target, 1, { socket, connected: true });
      t.notOk(stale?.ok, `${what}: the old socket no longer reaches the removed backend: ${JSON.stringify(stale)}`);
      t.not(stale?.code, 'ETIMEDOUT', `${what}: it fails with an error, not a silent timeout`);
      t.equal(stale?.remote, undefined, `${what}: the kernel disconnected it (getpeername fails)`);
      await bed.client.closeUdp(socket);
    }
    if (keep) {
      const after = await bed.client.udp(v6, 3, { socket: keep, connected: true });
      t.same(after.map((a) => [a.ok, a.backend]), Array(3).fill([true, kept?.backend]), `a socket on a backend that stays (${kept?.backend}) is left alone`);
      await bed.client.closeUdp(keep);
    }
    const fresh6 = oneBackend(t, await bed.client.udp(v6, 2, { socket: 'new6', connected: true }), `${SWEEP_VIP6}:${UDP_PORT}`, 'a new IPv6 socket');
    t.ok(fresh6 && fresh6 !== first6, `the new IPv6 socket landed on a live backend (${fresh6}, removed ${first6})`);
    const fresh4 = oneBackend(t, await bed.client.udp(mapped, 2, { socket: 'new4', connected: true }), `${SWEEP_MAPPED}:${UDP_PORT}`, 'a new IPv4-mapped socket');
    t.ok(fresh4 && fresh4 !== first4, `the new IPv4-mapped socket landed on a live backend (${fresh4}, removed ${first4})`);
  });
}
