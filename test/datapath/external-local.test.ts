// External traffic to a backend on this node (bpf/host.bpf.c): a client outside the node reaches a
// NodePort, LoadBalancer IP or ExternalIP on the host interface; the program DNATs only (the pod
// sees the client's address and port), tracks the flow in sl_ct4 flagged external, and the pod's
// reply leaving through the host interface gets the frontend back as its source. Every
// translated frame is compared byte for byte with the frame built directly with the expected
// addresses (so every checksum is exactly the one a fresh computation gives).
import t from 'tap';
import { BE_F, CT_F, CT_STATE, CT_TYPE, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, TCP_FLAGS } from '../../src/packet/index.js';
import type { FrameSpec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const CLIENT = '198.51.100.7';
const NODE = '192.168.50.2';
const LB_IP = '203.0.113.10';
const POD = { addr: '10.244.1.11', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: '192.168.50.3' };
const kind = (k: keyof typeof FRONTEND_KIND) => FRONTEND_KIND[k] << SVC_F_KIND_SHIFT;
const EXT = SVC_F.EXTERNAL;

const synSpec = (dst: string, dport: number, sport = 40001): FrameSpec => ({
  ip: { src: CLIENT, dst, id: 0x4242, ttl: 57 },
  tcp: { sport, dport, flags: TCP_FLAGS.SYN, seq: 1000, options: Buffer.from([2, 4, 5, 0xb4]) },
});

t.test('NodePort, local backend: DNAT only, the pod sees the client; the reply leaves from the node address', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [POD], flags: EXT | kind('NodePort') });

  const syn = synSpec(NODE, 30080);
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(syn));
  t.equal(out.retval, TC_ACT.UNSPEC, 'handed to the kernel, which routes it to the pod');
  t.same(out.data, buildFrame({ ...syn, ip: { ...syn.ip, dst: POD.addr }, tcp: { ...syn.tcp!, dport: POD.port } }),
    'exactly the SYN the client sent, to pod:8080 (TTL untouched: the kernel forwards it)');
  t.same(checksumProblems(out.parsed), []);

  const fwdKey = tupleKey(CLIENT, NODE, 40001, 30080, IPPROTO.TCP);
  const revKey = tupleKey(POD.addr, CLIENT, POD.port, 40001, IPPROTO.TCP);
  t.match(dp.ct(fwdKey), { type: CT_TYPE.FORWARD, nat_addr: POD.addr, nat_port: POD.port, flags: CT_F.EXTERNAL, nat_saddr: '0.0.0.0', svc_id: 3, state: CT_STATE.SYN_SENT });
  t.match(dp.ct(revKey), { type: CT_TYPE.REVERSE, nat_addr: NODE, nat_port: 30080, flags: CT_F.EXTERNAL, svc_id: 3 });
  t.equal(dp.ctCount(), 2);

  // The pod's SYN-ACK leaving through the host interface.
  const synAck: FrameSpec = { ip: { src: POD.addr, dst: CLIENT, id: 9, ttl: 63 }, tcp: { sport: POD.port, dport: 40001, flags: TCP_FLAGS.SYN | TCP_FLAGS.ACK, seq: 7000, ack: 1001 } };
  const back = dp.run(PROG.HOST_EGRESS, buildFrame(synAck));
  t.equal(back.retval, TC_ACT.UNSPEC);
  t.same(back.data, buildFrame({ ...synAck, ip: { ...synAck.ip, src: NODE }, tcp: { ...synAck.tcp!, sport: 30080 } }),
    'the reply comes from node:30080, nothing else changed');
  t.equal(dp.ct(fwdKey)?.state, CT_STATE.ESTABLISHED, 'the SYN-ACK established the flow');

  // Later client packets keep the backend.
  const data: FrameSpec = { ip: { src: CLIENT, dst: NODE, id: 5 }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.ACK | TCP_FLAGS.PSH, seq: 1001, ack: 7001 }, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n') };
  const fwd = dp.run(PROG.HOST_INGRESS, buildFrame(data));
  t.same(fwd.data, buildFrame({ ...data, ip: { ...data.ip, dst: POD.addr }, tcp: { ...data.tcp!, dport: POD.port } }));

  // The client's RST closes both entries; a new SYN on the same tuple starts a fresh flow.
  dp.run(PROG.HOST_INGRESS, buildFrame({ ip: { src: CLIENT, dst: NODE }, tcp: { sport: 40001, dport: 30080, flags: TCP_FLAGS.RST, seq: 1019 } }));
  t.equal(dp.ct(fwdKey)?.state, CT_STATE.CLOSED);
  t.equal(dp.ct(revKey)?.state, CT_STATE.CLOSED);
  dp.run(PROG.HOST_INGRESS, buildFrame(syn));
  t.equal(dp.ct(fwdKey)?.state, CT_STATE.SYN_SENT, 'reopened');

  const c = dp.extCounters(FRONTEND_KIND.NodePort);
  t.equal(c.connections, 2n, 'two flows counted under NodePort');
  t.equal(c.packets, 2n, 'new-flow packets counted per kind');
  t.equal(dp.extCounters(FRONTEND_KIND.LoadBalancer).connections, 0n);
  t.equal(dp.svcCounters(3).connections, 2n);
});

t.test('LoadBalancer IP over UDP: DNAT only, replies reverse-translated, per-kind counters', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: LB_IP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...POD, port: 5353 }], flags: EXT | kind('LoadBalancer') });
  const q: FrameSpec = { ip: { src: CLIENT, dst: LB_IP, id: 1 }, udp: { sport: 5000, dport: 53 }, payload: Buffer.from('query') };
  const out = dp.run(PROG.HOST_INGRESS, buildFrame(q));
  t.same(out.data, buildFrame({ ...q, ip: { ...q.ip, dst: POD.addr }, udp: { sport: 5000, dport: 5353 } }));
  const r: FrameSpec = { ip: { src: POD.addr, dst: CLIENT, id: 2 }, udp: { sport: 5353, dport: 5000 }, payload: Buffer.from('answer') };
  const back = dp.run(PROG.HOST_EGRESS, buildFrame(r));
  t.same(back.data, buildFrame({ ...r, ip: { ...r.ip, src: LB_IP }, udp: { sport: 53, dport: 5000 } }));
  t.equal(dp.extCounters(FRONTEND_KIND.LoadBalancer).connections, 1n);
});

t.test('not ours: ClusterIP frontends, unknown destinations, pod flows\' replies pass untouched (TC_ACT_UNSPEC)', async (t) => {
  const dp = await loadDatapath(t, { object: HOST_OBJECT });
  if (!dp) return;
  dp.addService({ vip: '10.96.0.10', port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [POD] });
  for (const spec of [synSpec('10.96.0.10', 80), synSpec(NODE, 22)]) {
    const frame = buildFrame(spec);
    const out = dp.run(PROG.HOST_INGRESS, frame);
    t.equal(out.retval, TC_ACT.UNSPEC);
    t.same(out.data, frame);
  }
  // A pod on this node talking to a ClusterIP with a backend on another node: the reply arrives
  // on the host interface and matches the pod flow's REVERSE entry, which is not the host's.
  const base = { created_ns: 1n, last_seen_ns: BigInt(Number.MAX_SAFE_INTEGER), state: CT_STATE.ESTABLISHED, nat_saddr: '0.0.0.0', nat_sport: 0, svc_id: 5, flags: 0 };
  dp.setCt(tupleKey(REMOTE.addr, '10.244.1.50', 8080, 41000, IPPROTO.TCP), { ...base, type: CT_TYPE.REVERSE, nat_addr: '10.96.0.10', nat_port: 80 });
  const reply = buildFrame({ ip: { src: REMOTE.addr, dst: '10.244.1.50' }, tcp: { sport: 8080, dport: 41000, flags: TCP_FLAGS.ACK } });
  for (const prog of [PROG.HOST_INGRESS, PROG.HOST_EGRESS]) {
    const out = dp.run(prog, reply);
    t.equal(out.retval, TC_ACT.UNSPEC, `${prog}: a pod flow is the pod programs' business`);
    t.same(out.data, reply);
  }
  t.equal(dp.ctCount(), 1, 'no entry created');
});
