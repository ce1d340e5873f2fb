// The scenario the maps-backend and sluicectl tests read, written into the dataplane's in-memory
// ServiceTables (same codecs, same array/per-CPU semantics as the kernel-backed tables): web
// with a ClusterIP and a NodePort and ClientIP affinity, dns over UDP, conntrack in both
// directions, affinity entries, per-CPU counters and drops.
import { BE_F, CT_STATE, CT_TYPE, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import type { CtKey4, CtValue4, ServiceValue, SvcCounters } from '../../src/bpf/sluice-structs.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';

export const CPUS = 4;
export const NOW_NS = 1_000_000n * 1_000_000_000n; // a fixed CLOCK_MONOTONIC "now"

const counters = (packets: number, bytes: number, connections: number, rejected = 0): SvcCounters => ({
  packets: BigInt(packets), bytes: BigInt(bytes), connections: BigInt(connections), rejected: BigInt(rejected),
});
const ZERO = counters(0, 0, 0);

/** `now` is the CLOCK_MONOTONIC instant the ages are relative to (real tests pass the clock). */
export function scenarioTables(now: bigint = NOW_NS): MemoryServiceTables {
  const secondsAgo = (s: number): bigint => now - BigInt(s) * 1_000_000_000n;
  const t = new MemoryServiceTables({ cpus: CPUS });
  const fe = (addr: string, port: number, proto: number, svc: Partial<ServiceValue>): void =>
    t.frontends.set({ addr, port, proto, scope: 0 }, {
      svc_id: 0, backend_id: 0, count: 0, local_count: 0, flags: 0, affinity_timeout_s: 0, ...svc,
    });
  fe('10.96.0.10', 80, IPPROTO.TCP, { svc_id: 1, backend_id: 10, count: 2, local_count: 1, flags: SVC_F.AFFINITY, affinity_timeout_s: 10800 });
  fe('192.168.1.5', 30080, IPPROTO.TCP, {
    svc_id: 1, backend_id: 10, count: 2, local_count: 1, flags: SVC_F.AFFINITY | SVC_F.EXTERNAL, affinity_timeout_s: 10800,
  });
  fe('10.96.0.53', 53, IPPROTO.UDP, { svc_id: 2, backend_id: 11, count: 1 });

  const be = (backend_id: number, ordinal: number, addr: string, port: number, flags: number, node_addr: string): void =>
    t.backends.set({ backend_id, ordinal }, { addr, port, flags, node_addr });
  be(10, 0, '10.244.1.5', 8080, BE_F.LOCAL, '192.168.1.5');
  be(10, 1, '10.244.2.7', 8080, 0, '192.168.1.6');
  be(10, 2, '10.244.1.5', 8080, BE_F.LOCAL, '192.168.1.5');
  be(10, 3, '10.244.9.9', 8080, 0, '0.0.0.0'); // beyond count: a leftover slot, not served
  be(11, 0, '10.244.2.9', 53, BE_F.TERMINATING, '0.0.0.0');

  t.svcMeta.set(1, { name: 'default/web:http/TCP/IPv4' });
  t.svcMeta.set(2, { name: 'kube-system/dns:dns/UDP/IPv4' });

  const ct = (key: CtKey4, value: Partial<CtValue4>): void =>
    t.ct.set(key, {
      created_ns: secondsAgo(30), last_seen_ns: secondsAgo(2), nat_addr: '0.0.0.0', nat_port: 0, type: CT_TYPE.FORWARD,
      state: CT_STATE.ESTABLISHED, nat_saddr: '0.0.0.0', svc_id: 1, flags: 0, nat_sport: 0, ...value,
    });
  ct({ saddr: '10.244.1.20', daddr: '10.96.0.10', sport: 40000, dport: 80, proto: IPPROTO.TCP }, { nat_addr: '10.244.2.7', nat_port: 8080 });
  ct({ saddr: '10.244.2.7', daddr: '10.244.1.20', sport: 8080, dport: 40000, proto: IPPROTO.TCP },
    { nat_addr: '10.96.0.10', nat_port: 80, type: CT_TYPE.REVERSE });
  ct({ saddr: '10.244.1.21', daddr: '10.96.0.53', sport: 5353, dport: 53, proto: IPPROTO.UDP },
    { nat_addr: '10.244.2.9', nat_port: 53, svc_id: 2, state: CT_STATE.NEW, created_ns: secondsAgo(5), last_seen_ns: secondsAgo(5) });

  t.affinity.set({ svc_id: 1, client_addr: '10.244.1.20' }, { last_used_ns: secondsAgo(20), backend_addr: '10.244.2.7', backend_port: 8080 });
  // Left over from when dns had affinity: its timeout is now 0, so the entry is expired.
  t.affinity.set({ svc_id: 2, client_addr: '10.244.1.99' }, { last_used_ns: secondsAgo(40), backend_addr: '10.244.2.9', backend_port: 53 });

  t.counters.set(1, [counters(10, 1000, 1), ZERO, ZERO, counters(5, 500, 2)]);
  t.counters.set(2, [ZERO, counters(3, 300, 3, 1), ZERO, ZERO]);
  t.dropCounters.set(1, [0n, 4n, 3n, 0n]);
  t.dropCounters.set(6, [1n, 0n, 0n, 0n]);
  return t;
}
