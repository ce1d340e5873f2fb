// The ClusterIP behaviours every load-balancing mode must show with real sockets, shared by the
// per-mode test files: TCP and UDP reach a backend, the backend sees the client pod's own
// address, the client sees only the VIP (getpeername, recvfrom), connections spread over the
// backends, and a service without backends is refused fast.
import type { Test } from 'tap';
import { decodePerCpu } from '../../src/bpf/codec.js';
import { loadNative } from '../../src/bpf/native.js';
import {
  ctKey4, ctValue4, CT_TYPE, frontendKey4, IPPROTO, serviceValue, sockRevnatValue4, svcCounters, u32Key,
} from '../../src/bpf/sluice-structs.js';
import type { Bed, BedOptions } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP = '10.96.0.10';
const EMPTY_VIP = '10.96.0.11';
/** A service whose only backend has no UDP listener: the backend's kernel answers ICMP port unreachable. */
const DEAF_VIP = '10.96.0.12';
const DEAF_PORT = 9;
const TCP_PORT = 80;
const AFFINITY_PORT = 81;
const UDP_PORT = 53;
const BACKEND_PORT = 8080;
const BACKENDS = ['be0', 'be1', 'be2'];
/** A refused connect must fail well before any retransmission timer would fire. */
const FAST_REFUSAL_MS = 100;

function describe(a: Attempt | undefined): string {
  return JSON.stringify(a);
}

/** Sum of one service's per-CPU counters, found through its frontend's svc_id. */
function serviceCounters(bed: Bed, vip: string, port: number, proto: number) {
  const native = loadNative();
  const fe = native.openPinnedMap(`${bed.pinDir}/sl_frontends4`);
  const counters = native.openPinnedMap(`${bed.pinDir}/sl_svc_counters`);
  try {
    const v = fe.lookup(frontendKey4.encode({ addr: vip, port, proto, scope: 0 }));
    if (!v) throw new Error(`no frontend ${vip}:${port}/${proto}`);
    const raw = counters.lookup(u32Key.encode(serviceValue.decode(v).svc_id));
    if (!raw) throw new Error(`no counters for ${vip}:${port}`);
    const sum = { connections: 0n, rejected: 0n };
    for (const c of decodePerCpu(svcCounters, raw, native.numPossibleCpus())) {
      sum.connections += c.connections;
      sum.rejected += c.rejected;
    }
    return sum;
  } finally {
    fe.close();
    counters.close();
  }
}

/** How many flows to vip:port each path recorded: socket reverse-NAT entries vs conntrack entries. */
function pathEvidence(bed: Bed, vip: string, port: number, proto: number) {
  const native = loadNative();
  const revnat = native.openPinnedMap(`${bed.pinDir}/sl_sock_revnat4`);
  const ct = native.openPinnedMap(`${bed.pinDir}/sl_ct4`);
  try {
    let sockets = 0;
    for (const k of revnat.keys()) {
      const v = revnat.lookup(k);
      const rv = v && sockRevnatValue4.decode(v);
      if (rv && rv.frontend_addr === vip && rv.frontend_port === port) sockets++;
    }
    let flows = 0;
    for (const k of ct.keys()) {
      const key = ctKey4.decode(k);
      const v = ct.lookup(k);
      if (v && ctValue4.decode(v).type === CT_TYPE.FORWARD && key.daddr === vip && key.dport === port && key.proto === proto) flows++;
    }
    return { sockets, flows };
  } finally {
    revnat.close();
    ct.close();
  }
}

export async function serviceBasics(t: Test, mode: Omit<BedOptions, 'pods'>): Promise<void> {
  const bed = await createBed(t, { pods: ['client', ...BACKENDS], ...mode });
  if (!bed) return;
  await bed.startBackends(BACKENDS, BACKEND_PORT);
  const backends = BACKENDS.map((n) => backendOf(bed.pod(n), BACKEND_PORT));
  bed.writer.apply(desiredState(
    clusterIpService({ name: 'web', vip: VIP, port: TCP_PORT, protocol: 'TCP', backends }),
    clusterIpService({ name: 'dns', vip: VIP, port: UDP_PORT, protocol: 'UDP', backends }),
    clusterIpService({ name: 'sticky', vip: VIP, port: AFFINITY_PORT, protocol: 'TCP', backends, affinityTimeoutSec: 60 }),
    clusterIpService({ name: 'empty', vip: EMPTY_VIP, port: TCP_PORT, protocol: 'TCP', backends: [] }),
    clusterIpService({ name: 'empty-udp', vip: EMPTY_VIP, port: UDP_PORT, protocol: 'UDP', backends: [] }),
    clusterIpService({ name: 'deaf', vip: DEAF_VIP, port: UDP_PORT, protocol: 'UDP', backends: [backendOf(bed.pod('be0'), DEAF_PORT)] }),
  ));
  const clientIp = bed.clientPod.ip;
  const names = new Set(BACKENDS);

  await t.test('TCP to the ClusterIP reaches a backend that sees the pod IP; getpeername is the VIP', async (t) => {
    const [a] = await bed.client.tcp({ host: VIP, port: TCP_PORT });
    t.ok(a?.ok, `connection succeeded: ${describe(a)}`);
    t.ok(a?.backend && names.has(a.backend), `answered by a backend (${a?.backend})`);
    t.equal(a?.peer?.split(':')[0], clientIp, 'the backend saw the client pod address');
    t.equal(a?.remote, `${VIP}:${TCP_PORT}`, 'getpeername() reports the VIP');
  });

  await t.test('UDP (unconnected) reaches a backend; recvfrom reports the VIP', async (t) => {
    const results = await bed.client.udp({ host: VIP, port: UDP_PORT }, 3);
    for (const a of results) {
      t.ok(a.ok, `datagram answered: ${describe(a)}`);
      t.ok(a.backend && names.has(a.backend), `answered by a backend (${a.backend})`);
      t.equal(a.peer?.split(':')[0], clientIp, 'the backend saw the client pod address');
      t.equal(a.from, `${VIP}:${UDP_PORT}`, 'recvfrom() reports the VIP');
    }
    t.equal(new Set(results.map((a) => a.backend)).size, 1, 'one socket keeps its backend');
  });

  await t.test('UDP (connected) reports the VIP from getpeername and recvfrom', async (t) => {
    const [a] = await bed.client.udp({ host: VIP, port: UDP_PORT }, 1, { connected: true });
    t.ok(a?.ok, `datagram answered: ${describe(a)}`);
    t.equal(a?.peer?.split(':')[0], clientIp, 'the backend saw the client pod address');
    t.equal(a?.remote, `${VIP}:${UDP_PORT}`, 'getpeername() reports the VIP');
    t.equal(a?.from, `${VIP}:${UDP_PORT}`, 'recvfrom() reports the VIP');
  });

  await t.test('300 connections spread over 3 backends', async (t) => {
    const before = serviceCounters(bed, VIP, TCP_PORT, IPPROTO.TCP);
    const results = await bed.client.tcp({ host: VIP, port: TCP_PORT }, 300);
    const failed = results.filter((a) => !a.ok);
    t.equal(failed.length, 0, `no failed connections (first: ${describe(failed[0])})`);
    const counts = new Map<string, number>();
    for (const a of results) if (a.backend) counts.set(a.backend, (counts.get(a.backend) ?? 0) + 1);
    t.comment(`spread: ${JSON.stringify(Object.fromEntries(counts))}`);
    // Each backend expects 100 (sd ~8.2): [50, 150] is a 6-sigma band, so only a skewed
    // selection (or one that ignores a backend) fails.
    for (const name of BACKENDS) {
      const n = counts.get(name) ?? 0;
      t.ok(n >= 50 && n <= 150, `${name} got ${n} of 300 (expected 50-150)`);
    }
    const after = serviceCounters(bed, VIP, TCP_PORT, IPPROTO.TCP);
    t.equal(after.connections - before.connections, 300n, 'the service counted 300 new connections');
  });

  await t.test('ClientIP affinity keeps the pod on one backend', async (t) => {
    // Connect-time programs identify the client by its network namespace (bpf/lib/sock.h), the
    // TC path by its source address: either way one pod is one client.
    const results = await bed.client.tcp({ host: VIP, port: AFFINITY_PORT }, 30);
    t.equal(results.filter((a) => !a.ok).length, 0, 'every connection succeeded');
    const seen = new Set(results.map((a) => a.backend));
    t.equal(seen.size, 1, `all 30 connections went to one backend (${[...seen].join(',')})`);
  });

  await t.test('a service with no backends is refused fast', async (t) => {
    const before = serviceCounters(bed, EMPTY_VIP, TCP_PORT, IPPROTO.TCP);
    const attempts = await bed.client.tcp({ host: EMPTY_VIP, port: TCP_PORT, timeoutMs: 3000 }, 5);
    for (const a of attempts) {
      t.equal(a.code, 'ECONNREFUSED', `connect() refused: ${describe(a)}`);
      t.ok(a.ms < FAST_REFUSAL_MS, `within ${FAST_REFUSAL_MS} ms (took ${a.ms} ms)`);
    }
    const after = serviceCounters(bed, EMPTY_VIP, TCP_PORT, IPPROTO.TCP);
    t.equal(after.rejected - before.rejected, 5n, 'the service counted 5 rejections');

    const [u] = await bed.client.udp({ host: EMPTY_VIP, port: UDP_PORT, timeoutMs: 3000 }, 1, { connected: true });
    t.equal(u?.code, 'ECONNREFUSED', `UDP to it is refused: ${describe(u)}`);
    t.ok((u?.ms ?? Infinity) < FAST_REFUSAL_MS, `within ${FAST_REFUSAL_MS} ms (took ${u?.ms} ms)`);
  });

  await t.test('a backend without a listener: connected UDP sees its port unreachable at once', async (t) => {
    // The backend's ICMP error quotes the datagram as it arrived (client -> backend). At connect
    // time the socket is connected to the backend and matches it; on the TC path the quote is
    // rewritten to client -> VIP (bpf/lib/icmp.h), else the error would match no socket and the
    // client would wait for its timeout.
    const [u] = await bed.client.udp({ host: DEAF_VIP, port: UDP_PORT, timeoutMs: 3000 }, 1, { connected: true });
    t.equal(u?.code, 'ECONNREFUSED', `refused: ${describe(u)}`);
    t.ok((u?.ms ?? Infinity) < 1000, `well before the 3 s timeout (took ${u?.ms} ms)`);
  });

  await t.test('each protocol took the path the mode selects', async (t) => {
    for (const [proto, port, atConnect] of [
      ['TCP', TCP_PORT, mode.ctlb !== 'off'],
      ['UDP', UDP_PORT, mode.ctlb === 'tcp+udp'],
    ] as const) {
      const seen = pathEvidence(bed, VIP, port, IPPROTO[proto]);
      if (atConnect) {
        t.ok(seen.sockets > 0, `${proto}: balanced at connect time (${seen.sockets} socket reverse-NAT entries)`);
        t.equal(seen.flows, 0, `${proto}: no conntrack entry towards the VIP`);
      } else {
        t.ok(seen.flows > 0, `${proto}: balanced by TC (${seen.flows} conntrack entries)`);
        t.equal(seen.sockets, 0, `${proto}: no socket reverse-NAT entry`);
      }
    }
  });
}
