// IPv6 and dual stack at connect time, with real sockets (connect6, sendmsg6, recvmsg6,
// getpeername6): the pods have IPv4 and IPv6 addresses, no TC program is attached, and the node
// namespace has no route for a VIP, so every success here is the connect-time path's.
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { sockRevnatValue6 } from '../../src/bpf/sluice-structs.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP6 = 'fd00:96::10';
const EMPTY_VIP6 = 'fd00:96::11';
const DUAL_VIP4 = '10.96.0.20';
const DUAL_VIP6 = 'fd00:96::20';
const TCP_PORT = 80;
const UDP_PORT = 53;
const BACKEND_PORT = 8080;
const BACKENDS = ['be0', 'be1'];
/** A refused connect must fail well before any retransmission timer would fire. */
const FAST_REFUSAL_MS = 100;

const describe = (a: Attempt | undefined): string => JSON.stringify(a);
/** The address of "addr:port" (an IPv6 address has colons of its own). */
const addrOf = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.slice(0, s.lastIndexOf(':')));

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
}
