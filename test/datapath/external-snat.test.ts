// External traffic to a backend on another node (bpf/host.bpf.c, lib/snat.h), externalTrafficPolicy
// Cluster: the request leaves with this node's address and a port of the reserved SNAT range as
// its source (kube-proxy's masquerade), the backend's reply is translated back to frontend ->
// client. Both are sent straight out (lib/fib.h): the route lookup runs in the test process's
// namespace, so the verdict is a redirect or, without a route, a counted drop; the bytes after
// the Ethernet addresses are exact either way (TTL decremented, as a router does).
import t from 'tap';
import { CT_F, CT_STATE, CT_TYPE, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { reverseKeyOf } from '../../src/dataplane/flow-cleanup.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';
import type { Datapath, RunResult } from './harness.js';
import type { Test } from 'tap';

const CLIENT = '198.51.100.7';
const NODE = '192.168.50.2';
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: '192.168.50.3' };
const PORT_MIN = 61000;
const PORT_MAX = 61009;
const L2 = 12; // Ethernet addresses: rewritten by the redirect

async function snatNode(t: Test, portMax = PORT_MAX): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return null;
  dp.setNodeConfig(NODE, PORT_MIN, portMax);
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  return dp;
}

/** Sent on (redirect) or dropped for want of a route in this namespace, and then counted. */
function sentOn(t: Test, dp: Datapath, out: RunResult, noRouteBefore: bigint): void {
  if (out.retval === TC_ACT.REDIRECT) t.pass('redirected out of the node');
  else t.same([out.retval, dp.drops('no_route')], [TC_ACT.SHOT, noRouteBefore + 1n], 'no route here: dropped and counted');
}

const syn = (sport: number, client = CLIENT): FrameSpec => ({
  ip: { src: client, dst: NODE, id: 0x77, ttl: 57 }, tcp: { sport, dport: 30080, flags: TCP_FLAGS.SYN, seq: 1000 },
});

t.test('remote backend: DNAT + SNAT to node:port from the reserved range; the reply goes back to the client', async (t) => {
  const dp = await snatNode(t);
  if (!dp) return;
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(syn(40001)));
  sentOn(t, dp, out, 0n);
  const sport = out.parsed.tcp?.sport ?? 0;
  t.ok(sport >= PORT_MIN && sport <= PORT_MAX, `SNAT port ${sport} in [${PORT_MIN}, ${PORT_MAX}]`);
  const want = buildFrame({ ip: { src: NODE, dst: REMOTE.addr, id: 0x77, ttl: 56 }, tcp: { sport, dport: REMOTE.port, flags: TCP_FLAGS.SYN, seq: 1000 } });
  t.same(out.data.subarray(L2), want.subarray(L2), 'node:sport -> backend:8080, TTL 56, checksums as computed afresh');
  t.same(checksumProblems(out.parsed), []);

  const fwdKey = tupleKey(CLIENT, NODE, 40001, 30080, IPPROTO.TCP);
  const revKey = tupleKey(REMOTE.addr, NODE, REMOTE.port, sport, IPPROTO.TCP);
  const fwd = dp.ct(fwdKey);
  t.match(fwd, { type: CT_TYPE.FORWARD, flags: CT_F.EXTERNAL | CT_F.SNAT, nat_addr: REMOTE.addr, nat_port: REMOTE.port, nat_saddr: NODE, nat_sport: sport });
  t.match(dp.ct(revKey), { type: CT_TYPE.REVERSE, flags: CT_F.EXTERNAL | CT_F.SNAT, nat_addr: NODE, nat_port: 30080, nat_saddr: CLIENT, nat_sport: 40001 });
  if (fwd) t.same(reverseKeyOf(fwdKey, fwd), revKey, 'the flow cleanup finds the REVERSE twin of an SNAT flow');

  // The backend's SYN-ACK arriving from its node.
  const synAck: FrameSpec = { ip: { src: REMOTE.addr, dst: NODE, id: 3, ttl: 63 }, tcp: { sport: REMOTE.port, dport: sport, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 9000, ack: 1001 } };
  const back = dp.run(PROG.HOST_INGRESS, buildFrame(synAck));
  sentOn(t, dp, back, out.retval === TC_ACT.SHOT ? 1n : 0n);
  const wantBack = buildFrame({ ip: { src: NODE, dst: CLIENT, id: 3, ttl: 62 }, tcp: { sport: 30080, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 9000, ack: 1001 } });
  t.same(back.data.subarray(L2), wantBack.subarray(L2), 'node:30080 -> client:40001');
  t.equal(dp.ct(fwdKey)?.state, CT_STATE.ESTABLISHED, 'the reply moved both entries');

  // Nothing of it is the egress program's: the reply is already translated when it leaves.
  const egress = dp.run(PROG.HOST_EGRESS, back.data);
  t.equal(egress.retval, TC_ACT.UNSPEC);

  // The client's next packet takes the same SNAT port.
  const ack = dp.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.ACK, seq: 1001, ack: 9001 } }));
  t.match(ack.parsed.tcp, { sport, dport: REMOTE.port });
  t.equal(ack.parsed.ip?.src, NODE);
});

t.test('SNAT ports never collide: a flow never takes a tuple a live flow holds; a full range drops', async (t) => {
  const dp = await snatNode(t, PORT_MIN + 2); // three ports
  if (!dp) return;
  const ports = new Set<number>();
  for (let i = 0; i < 3; i++) {
    // With three ports and eight random tries each, a flow may fail to find the last free one;
    // retry with a fresh client port until all three are taken (bounded).
    for (let attempt = 0; attempt < 20 && ports.size === i; attempt++) {
      const out = dp.run(PROG.HOST_INGRESS, buildFrame(syn(41000 + i * 100 + attempt)));
      if (out.parsed.ip?.src === NODE) ports.add(out.parsed.tcp?.sport ?? 0);
    }
  }
  t.same([...ports].sort(), [PORT_MIN, PORT_MIN + 1, PORT_MIN + 2], 'three flows, three distinct ports');
  const before = dp.drops('snat_ports');
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(syn(42000)));
  t.equal(out.retval, TC_ACT.SHOT, 'a fourth flow to the same backend finds no free port');
  t.equal(dp.drops('snat_ports'), before + 1n);
  t.equal(dp.ct(tupleKey(CLIENT, NODE, 42000, 30080, IPPROTO.TCP)), null, 'and leaves no entry');
});

t.test('without a configured SNAT address, a remote backend\'s flow is dropped and counted', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  t.equal(dp.run(PROG.HOST_INGRESS, buildFrame(syn(40001))).retval, TC_ACT.SHOT);
  t.equal(dp.drops('snat_ports'), 1n);
  t.equal(dp.ctCount(), 0);
});
