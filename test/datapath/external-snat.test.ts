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

/**
 * The established timeout the nodes load with (the default is 1 h): aging an entry moves its last
 * packet into the past, which the monotonic clock allows only as far back as the boot, and a CI
 * machine may be younger than an hour.
 */
const ESTABLISHED_NS = 120n * 1_000_000_000n;

async function snatNode(t: Test, portMax = PORT_MAX): Promise<Datapath | null> {
  const dp = await loadDatapath(t, { object: HOST_OBJECT, rodataU64: { sl_ct_timeout_tcp_established_ns: ESTABLISHED_NS } });
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

// Port reuse (lib/snat.h, conntrack.h sl_ct_snat_over4): a range of four ports, which the
// allocator sweeps whole (no larger than its tries), so every outcome below is deterministic.
const TINY_MAX = PORT_MIN + 3;
const fwdOf = (cport: number, proto: number = IPPROTO.TCP, dport = 30080) => tupleKey(CLIENT, NODE, cport, dport, proto);
const fromClient = (cport: number, flags: number): Buffer =>
  buildFrame({ ip: { src: CLIENT, dst: NODE }, tcp: { sport: cport, dport: 30080, flags, seq: 2000, ack: 9001 } });
const fromBackend = (snatPort: number, flags: number): Buffer =>
  buildFrame({ ip: { src: REMOTE.addr, dst: NODE }, tcp: { sport: REMOTE.port, dport: snatPort, flags, seq: 9001, ack: 2000 } });

/** Opens a TCP flow from client port cport (SYN; with established, SYN-ACK and ACK too): its SNAT port, or null (dropped). */
function open(dp: Datapath, cport: number, established = true): number | null {
  dp.run(PROG.HOST_INGRESS, buildFrame(syn(cport)));
  const port = dp.ct(fwdOf(cport))?.nat_sport ?? null;
  if (port !== null && established) {
    dp.run(PROG.HOST_INGRESS, fromBackend(port, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
    dp.run(PROG.HOST_INGRESS, fromClient(cport, TCP_FLAGS.ACK));
  }
  return port;
}

/** The flow from client port cport holds SNAT port `port`: both entries present and pointing at each other. */
function holds(t: Test, dp: Datapath, cport: number, port: number, proto: number = IPPROTO.TCP, what = ''): void {
  const dport = proto === IPPROTO.TCP ? 30080 : 30053;
  t.match(dp.ct(fwdOf(cport, proto, dport)), { type: CT_TYPE.FORWARD, nat_sport: port }, `${what}client port ${cport}: FORWARD entry on SNAT port ${port}`);
  t.match(dp.ct(tupleKey(REMOTE.addr, NODE, REMOTE.port, port, proto)), { type: CT_TYPE.REVERSE, nat_sport: cport }, `${what}SNAT port ${port}: REVERSE entry of client port ${cport}`);
}

/** Moves an entry's last packet `ago` nanoseconds into the past. */
function age(dp: Datapath, key: ReturnType<typeof tupleKey>, ago: bigint): void {
  const v = dp.ct(key);
  if (!v) throw new Error('age: no entry');
  if (v.last_seen_ns <= ago) throw new Error('age: the clock is younger than the timeout');
  dp.setCt(key, { ...v, last_seen_ns: v.last_seen_ns - ago });
}

t.test('a finished flow\'s port is taken back at once (RST, or a FIN each way); a half-closed flow keeps its port', async (t) => {
  const dp = await snatNode(t, TINY_MAX);
  if (!dp) return;
  const ports = [43000, 43001, 43002, 43003].map((c) => open(dp, c));
  t.same([...ports].sort(), [PORT_MIN, PORT_MIN + 1, PORT_MIN + 2, PORT_MIN + 3], 'four established flows hold the four ports');
  const [bothFin = 0, rst = 0, halfClosed = 0, live = 0] = ports as number[];

  dp.run(PROG.HOST_INGRESS, fromClient(43000, TCP_FLAGS.FIN | TCP_FLAGS.ACK));
  dp.run(PROG.HOST_INGRESS, fromBackend(bothFin, TCP_FLAGS.FIN | TCP_FLAGS.ACK));
  t.match(dp.ct(fwdOf(43000)), { state: CT_STATE.FIN, flags: CT_F.EXTERNAL | CT_F.SNAT | CT_F.FIN_SEEN }, 'each entry flags its own direction\'s FIN');
  dp.run(PROG.HOST_INGRESS, fromBackend(rst, TCP_FLAGS.RST));
  dp.run(PROG.HOST_INGRESS, fromClient(43002, TCP_FLAGS.FIN | TCP_FLAGS.ACK)); // the backend may still send
  t.equal(dp.ct(tupleKey(REMOTE.addr, NODE, REMOTE.port, halfClosed, IPPROTO.TCP))?.flags, CT_F.EXTERNAL | CT_F.SNAT, 'half-closed: the backend\'s side sent no FIN');

  const drops = dp.drops('snat_ports');
  const a = open(dp, 43100, false);
  const b = open(dp, 43101, false);
  t.same([a, b].sort(), [bothFin, rst].sort(), 'two new flows take the finished flows\' ports');
  t.equal(dp.ct(fwdOf(43000)), null, 'the FIN-FIN flow\'s FORWARD entry is gone');
  t.equal(dp.ct(fwdOf(43001)), null, 'the reset flow\'s FORWARD entry is gone');
  holds(t, dp, 43100, a ?? 0, IPPROTO.TCP, 'its REVERSE entry replaced: ');
  holds(t, dp, 43101, b ?? 0, IPPROTO.TCP, 'its REVERSE entry replaced: ');

  const out = dp.run(PROG.HOST_INGRESS, buildFrame(syn(43102)));
  t.equal(out.retval, TC_ACT.SHOT, 'a third new flow finds only live flows: dropped');
  t.equal(dp.drops('snat_ports'), drops + 1n, 'counted as snat_ports');
  t.equal(dp.ct(fwdOf(43102)), null, 'and leaves no entry');
  holds(t, dp, 43002, halfClosed, IPPROTO.TCP, 'half-closed flow untouched: ');
  holds(t, dp, 43003, live, IPPROTO.TCP, 'established flow untouched: ');
  t.equal(dp.ct(fwdOf(43100))?.state, CT_STATE.SYN_SENT, 'a new flow still in its handshake is live too');

  // The backend closes its side as well: now that port is free for the next flow.
  dp.run(PROG.HOST_INGRESS, fromBackend(halfClosed, TCP_FLAGS.FIN | TCP_FLAGS.ACK));
  t.equal(open(dp, 43103), halfClosed, 'once both FINs are seen the port goes to a new flow');
  t.equal(dp.ct(fwdOf(43002)), null, 'and the closed flow\'s entries are gone');
  holds(t, dp, 43103, halfClosed);
});

t.test('a range full of live flows drops a new flow (snat_ports) and steals nothing, even from a flow idle one way', async (t) => {
  const dp = await snatNode(t, TINY_MAX);
  if (!dp) return;
  const ports = [44000, 44001, 44002, 44003].map((c) => open(dp, c)) as number[];
  t.equal(new Set(ports).size, 4, 'four established flows hold the four ports');
  // One flow's REVERSE entry idle past the established timeout, its FORWARD entry fresh.
  const idle = tupleKey(REMOTE.addr, NODE, REMOTE.port, ports[0] ?? 0, IPPROTO.TCP);
  age(dp, idle, ESTABLISHED_NS + 1_000_000_000n);
  const before = dp.drops('snat_ports');
  for (const cport of [44100, 44101]) {
    t.equal(dp.run(PROG.HOST_INGRESS, buildFrame(syn(cport))).retval, TC_ACT.SHOT, `client port ${cport}: dropped`);
    t.equal(dp.ct(fwdOf(cport)), null, `client port ${cport}: no entry`);
  }
  t.equal(dp.drops('snat_ports'), before + 2n, 'both counted as snat_ports');
  ports.forEach((port, i) => holds(t, dp, 44000 + i, port));
  t.equal(dp.ctCount(), 8, 'nothing else in the table');
});

t.test('UDP: an expired flow\'s port is reused; a flow idle in one direction only is not', async (t) => {
  const dp = await snatNode(t, TINY_MAX);
  if (!dp) return;
  dp.addService({ vip: NODE, port: 30053, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [REMOTE], flags: SVC_F.EXTERNAL });
  const query = (cport: number): number | null => {
    dp.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE }, udp: { sport: cport, dport: 30053 }, payload: Buffer.from('q') }));
    return dp.ct(fwdOf(cport, IPPROTO.UDP, 30053))?.nat_sport ?? null;
  };
  const ports = [45000, 45001, 45002, 45003].map(query) as number[];
  t.same([...ports].sort(), [PORT_MIN, PORT_MIN + 1, PORT_MIN + 2, PORT_MIN + 3], 'four UDP flows hold the four ports');
  t.equal(query(45100), null, 'a fifth finds none free: dropped');

  const udpTimeout = 61n * 1_000_000_000n; // the UDP timeout is 60 s
  age(dp, fwdOf(45000, IPPROTO.UDP, 30053), udpTimeout);
  age(dp, tupleKey(REMOTE.addr, NODE, REMOTE.port, ports[0] ?? 0, IPPROTO.UDP), udpTimeout);
  age(dp, tupleKey(REMOTE.addr, NODE, REMOTE.port, ports[1] ?? 0, IPPROTO.UDP), udpTimeout); // its client still sends
  const drops = dp.drops('snat_ports');
  t.equal(query(45101), ports[0], 'the flow expired both ways gives its port to a new flow');
  t.equal(dp.ct(fwdOf(45000, IPPROTO.UDP, 30053)), null, 'the expired flow\'s FORWARD entry is gone');
  holds(t, dp, 45101, ports[0] ?? 0, IPPROTO.UDP);
  t.equal(query(45102), null, 'the flow idle one way only keeps its port: the next is dropped');
  t.equal(dp.drops('snat_ports'), drops + 1n);
  holds(t, dp, 45001, ports[1] ?? 0, IPPROTO.UDP, 'idle one way: ');
});

t.test('TCP: an established flow idle past its timeout both ways gives its port to a new flow', async (t) => {
  const dp = await snatNode(t, TINY_MAX);
  if (!dp) return;
  const ports = [46000, 46001, 46002, 46003].map((c) => open(dp, c)) as number[];
  t.equal(new Set(ports).size, 4, 'four established flows hold the four ports');
  const pastTimeout = ESTABLISHED_NS + 1_000_000_000n;
  age(dp, fwdOf(46002), pastTimeout);
  age(dp, tupleKey(REMOTE.addr, NODE, REMOTE.port, ports[2] ?? 0, IPPROTO.TCP), pastTimeout);
  t.equal(open(dp, 46100), ports[2], 'the expired flow\'s port is taken');
  t.equal(dp.ct(fwdOf(46002)), null, 'its FORWARD entry is gone');
  holds(t, dp, 46100, ports[2] ?? 0);
  [0, 1, 3].forEach((i) => holds(t, dp, 46000 + i, ports[i] ?? 0, IPPROTO.TCP, 'live: '));
});
