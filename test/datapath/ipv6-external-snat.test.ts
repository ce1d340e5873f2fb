// External IPv6 traffic to a backend on another node (bpf/host.bpf.c -> lib/host6.h, lib/snat6.h),
// externalTrafficPolicy Cluster: the request leaves with this node's IPv6 address
// (sl_node_config6) and a port of the SNAT range as its source, the backend's reply is translated
// back to frontend -> client. Both are sent straight out (lib/fib.h): the route lookup runs in the
// test process's namespace, so the verdict is a redirect or, without a route, a counted drop; the
// bytes after the Ethernet addresses are exact either way (hop limit decremented, as a router;
// TCP/UDP checksums equal to ones computed from scratch over the new pseudo-header). SNAT mode,
// and the Tunnel and DSR modes' fallback when the backend's node has no known IPv6 address
// (ipv6-external-tunnel.test.ts has the tunnel).
import t from 'tap';
import type { Test } from 'tap';
import { CT_F, CT_STATE, CT_TYPE, EXTERNAL_MODE, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Frame6Spec } from '../../src/packet/index.js';
import { reverseKeyOf } from '../../src/dataplane/flow-cleanup.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import { addService6, ct6, setNodeConfig6 } from './harness6.js';

const CLIENT = '2001:db8:77::7';
const NODE = '2001:db8:50::2';
const REMOTE = { addr: 'fd00:10:244:2::c', port: 8080, flags: 0, nodeAddr: '2001:db8:50::3' };
const PORT_MIN = 61000;
const PORT_MAX = 61009;
const L2 = 12; // Ethernet addresses: rewritten by the redirect
const NODEPORT = SVC_F.EXTERNAL | (FRONTEND_KIND.NodePort << SVC_F_KIND_SHIFT);

async function snatNode(t: Test, opts: { portMax?: number; mode?: number } = {}): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: opts.mode === undefined ? {} : { sl_external_mode: opts.mode } });
  if (!dp) return null;
  setNodeConfig6(dp, NODE, PORT_MIN, opts.portMax ?? PORT_MAX);
  addService6(dp, { vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: NODEPORT, clusterIp: false });
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, noRouteBefore: bigint): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRouteBefore + 1n], 'no route here: dropped and counted');
}

const syn = (sport: number): Frame6Spec => ({ src: CLIENT, dst: NODE, hopLimit: 57, tcp: { sport, dport: 30080, flags: TCP6_FLAGS.SYN, seq: 1000 }, payload: Buffer.from([2, 4, 5, 0xa0]) });

t.test('IPv6 remote backend: DNAT + SNAT to node:port from the reserved range; the reply goes back to the client', async (t) => {
  const dp = await snatNode(t);
  if (!dp) return;
  const out = dp.run(PROG.HOST_INGRESS, buildFrame6(syn(40001)));
  sentOn(t, dp, out, 0n);
  const got = parseFrame6(out.data);
  const sport = got.sport;
  t.ok(sport >= PORT_MIN && sport <= PORT_MAX, `SNAT port ${sport} in [${PORT_MIN}, ${PORT_MAX}]`);
  const want = buildFrame6({ ...syn(40001), src: NODE, dst: REMOTE.addr, hopLimit: 56, tcp: { sport, dport: REMOTE.port, flags: TCP6_FLAGS.SYN, seq: 1000 } });
  t.same(out.data.subarray(L2), want.subarray(L2), 'node:sport -> backend:8080, hop limit 56, TCP checksum as computed afresh');
  t.ok(got.checksumOk);

  const fwd = ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP);
  t.match(fwd, { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.SNAT, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE, nat_sport: sport, svc_id: 3 });
  t.match(ct6(dp, REMOTE.addr, NODE, REMOTE.port, sport, IPPROTO.TCP), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.SNAT, nat_addr: NODE, nat_port: 30080, nat_saddr: CLIENT, nat_sport: 40001 });
  if (fwd) {
    t.same(reverseKeyOf({ saddr: CLIENT, daddr: NODE, sport: 40001, dport: 30080, proto: IPPROTO.TCP }, fwd),
      { saddr: REMOTE.addr, daddr: NODE, sport: REMOTE.port, dport: sport, proto: IPPROTO.TCP }, 'the flow cleanup finds the REVERSE twin of an IPv6 SNAT flow');
  }

  // The backend's SYN-ACK arriving from its node.
  const synAck: Frame6Spec = { src: REMOTE.addr, dst: NODE, hopLimit: 63, tcp: { sport: REMOTE.port, dport: sport, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 9000, ack: 1001 } };
  const back = dp.run(PROG.HOST_INGRESS, buildFrame6(synAck));
  sentOn(t, dp, back, out.retval === TC_ACT.SHOT ? 1n : 0n);
  const wantBack = buildFrame6({ ...synAck, src: NODE, dst: CLIENT, hopLimit: 62, tcp: { ...synAck.tcp!, sport: 30080, dport: 40001 } });
  t.same(back.data.subarray(L2), wantBack.subarray(L2), 'node:30080 -> client:40001, hop limit 62');
  t.ok(parseFrame6(back.data).checksumOk);
  t.equal(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED, 'the reply moved both entries');

  // Nothing of it is the egress program's: the reply is already translated when it leaves.
  const egress = dp.run(PROG.HOST_EGRESS, back.data);
  t.equal(egress.retval, TC_ACT.UNSPEC);
  t.same(egress.data, back.data);

  // The client's next packet takes the same SNAT port, payload intact.
  const data: Frame6Spec = { src: CLIENT, dst: NODE, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.ACK | TCP6_FLAGS.PSH, seq: 1001, ack: 9001 }, payload: Buffer.from('odd-length data!!') };
  const next = dp.run(PROG.HOST_INGRESS, buildFrame6(data));
  t.same(next.data.subarray(L2), buildFrame6({ ...data, src: NODE, dst: REMOTE.addr, hopLimit: 63, tcp: { ...data.tcp!, sport, dport: REMOTE.port } }).subarray(L2));
  t.equal(dp.extCounters(FRONTEND_KIND.NodePort).connections, 1n);
  t.equal(dp.svcCounters(3).connections, 1n);
});

t.test('IPv6 SNAT over UDP: both directions exact (UDP checksum mandatory in IPv6)', async (t) => {
  const dp = await snatNode(t);
  if (!dp) return;
  addService6(dp, { vip: NODE, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...REMOTE, port: 5353 }], flags: NODEPORT, clusterIp: false });
  const q: Frame6Spec = { src: CLIENT, dst: NODE, udp: { sport: 5000, dport: 30053 }, payload: Buffer.from('query') };
  const out = dp.run(PROG.HOST_INGRESS, buildFrame6(q));
  const sport = parseFrame6(out.data).sport;
  t.same(out.data.subarray(L2), buildFrame6({ ...q, src: NODE, dst: REMOTE.addr, hopLimit: 63, udp: { sport, dport: 5353 } }).subarray(L2));
  const r: Frame6Spec = { src: REMOTE.addr, dst: NODE, udp: { sport: 5353, dport: sport }, payload: Buffer.from('answer!') };
  const back = dp.run(PROG.HOST_INGRESS, buildFrame6(r));
  t.same(back.data.subarray(L2), buildFrame6({ ...r, src: NODE, dst: CLIENT, hopLimit: 63, udp: { sport: 30053, dport: 5000 } }).subarray(L2));
  t.ok(parseFrame6(back.data).checksumOk);
});

t.test('IPv6 SNAT ports: distinct for live flows, a full range drops, a finished flow\'s port is taken back', async (t) => {
  const dp = await snatNode(t, { portMax: PORT_MIN + 2 }); // three ports: swept whole, deterministic
  if (!dp) return;
  const ports = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const out = dp.run(PROG.HOST_INGRESS, buildFrame6(syn(41000 + i)));
    ports.add(parseFrame6(out.data).sport);
  }
  t.same([...ports].sort(), [PORT_MIN, PORT_MIN + 1, PORT_MIN + 2], 'three flows, three distinct ports');
  const before = dp.drops('snat_ports');
  const full = dp.run(PROG.HOST_INGRESS, buildFrame6(syn(42000)));
  t.equal(full.retval, TC_ACT.SHOT, 'a fourth flow finds no free port');
  t.equal(dp.drops('snat_ports'), before + 1n);
  t.equal(ct6(dp, CLIENT, NODE, 42000, 30080, IPPROTO.TCP), null, 'and leaves no entry');

  // The first flow is reset by the client: its port is over, and the next flow takes it.
  const first = ct6(dp, CLIENT, NODE, 41000, 30080, IPPROTO.TCP);
  dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 41000, dport: 30080, flags: TCP6_FLAGS.RST, seq: 1001 } }));
  const again = dp.run(PROG.HOST_INGRESS, buildFrame6(syn(43000)));
  t.equal(parseFrame6(again.data).sport, first?.nat_sport, 'the reset flow\'s port went to the new one');
  t.equal(ct6(dp, CLIENT, NODE, 41000, 30080, IPPROTO.TCP), null, 'the old flow\'s entries are gone');
  t.match(ct6(dp, REMOTE.addr, NODE, REMOTE.port, first?.nat_sport ?? 0, IPPROTO.TCP), { nat_saddr: CLIENT, nat_sport: 43000 }, 'the tuple now restores the new client');
});

t.test('IPv6 without an SNAT address: a remote backend\'s flow is dropped and counted; Tunnel and DSR modes SNAT when the backend\'s node has no known IPv6 address', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  addService6(dp, { vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: NODEPORT, clusterIp: false });
  t.equal(dp.run(PROG.HOST_INGRESS, buildFrame6(syn(40001))).retval, TC_ACT.SHOT);
  t.equal(dp.drops('snat_ports'), 1n);
  t.equal(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP), null);

  for (const mode of [EXTERNAL_MODE.TUNNEL, EXTERNAL_MODE.DSR]) {
    const m = await snatNode(t, { mode });
    if (!m) return;
    // The backend's node without an IPv6 address (::): no tunnel to it, the SNAT fallback.
    addService6(m, { vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [{ ...REMOTE, nodeAddr: '::' }], flags: NODEPORT, clusterIp: false });
    const out = m.run(PROG.HOST_INGRESS, buildFrame6(syn(40002)));
    const got = parseFrame6(out.data);
    t.same([got.src, got.dst, got.dport], [NODE, REMOTE.addr, REMOTE.port], `mode ${mode}: SNATed (no tunnel without the node's address)`);
    t.match(ct6(m, CLIENT, NODE, 40002, 30080, IPPROTO.TCP), { flags: CT_F.EXTERNAL | CT_F.SNAT });
  }
});
