// External IPv6 traffic to a backend on this node (bpf/host.bpf.c -> lib/host6.h): a client outside
// the node reaches an IPv6 NodePort, LoadBalancer IP or ExternalIP on the host interface; the
// program DNATs only (the pod sees the client), tracks the flow in sl_ct6 flagged external, and
// the pod's reply leaving through the host interface gets the frontend back as its source.
// Every translated frame is compared whole with one built from scratch, so the incremental
// pseudo-header checksum update must equal a fresh TCP/UDP checksum. eTP=Local, no endpoints
// (RST / ICMPv6 port unreachable from the frontend), not-ours packets, source ranges.
import t from 'tap';
import { BE_F, CT_F, CT_STATE, CT_TYPE, FRONTEND_KIND, IPPROTO, SVC_F, SVC_F_KIND_SHIFT } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, ETH_HLEN, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import type { Frame6Spec } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT } from './harness.js';
import { addService6, ct6, ICMP6, icmp6Error, setCt6 } from './harness6.js';

const CLIENT = '2001:db8:77::7';
const NODE = '2001:db8:50::2';
const LB_IP = '2001:db8:113::10';
const POD = { addr: 'fd00:10:244::b', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: 'fd00:10:244:2::c', port: 8080, flags: 0, nodeAddr: '2001:db8:50::3' };
const kind = (k: keyof typeof FRONTEND_KIND) => FRONTEND_KIND[k] << SVC_F_KIND_SHIFT;
const EXT = SVC_F.EXTERNAL;
const CLIENT_MAC = '02:00:00:00:07:07';
const NODE_MAC = '02:00:00:00:50:02';
const fromClient = { srcMac: CLIENT_MAC, dstMac: NODE_MAC };
const toClient = { srcMac: NODE_MAC, dstMac: CLIENT_MAC };

const hostDatapath = (t: Parameters<typeof loadDatapath>[0]) => loadDatapath(t, { object: HOST_OBJECT });

t.test('IPv6 NodePort, local backend: DNAT only, the pod sees the client; the reply leaves from node:nodePort', async (t) => {
  const dp = await hostDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: NODE, port: 30080, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [POD], flags: EXT | kind('NodePort'), clusterIp: false });

  const syn: Frame6Spec = { ...fromClient, src: CLIENT, dst: NODE, hopLimit: 57, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.SYN, seq: 1000 }, payload: Buffer.from([2, 4, 5, 0xa0]) };
  const out = dp.run(PROG.HOST_INGRESS, buildFrame6(syn));
  t.equal(out.retval, TC_ACT.UNSPEC, 'handed to the kernel, which routes it to the pod');
  t.same(out.data, buildFrame6({ ...syn, dst: POD.addr, tcp: { ...syn.tcp!, dport: POD.port } }),
    'exactly the SYN the client sent, to pod:8080 (hop limit untouched: the kernel forwards it), TCP checksum exact');
  t.ok(parseFrame6(out.data).checksumOk);

  t.match(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP), { type: CT_TYPE.FORWARD, nat_addr: POD.addr, nat_port: POD.port, flags: CT_F.EXTERNAL, nat_saddr: '::', svc_id: 3, state: CT_STATE.SYN_SENT });
  t.match(ct6(dp, POD.addr, CLIENT, POD.port, 40001, IPPROTO.TCP), { type: CT_TYPE.REVERSE, nat_addr: NODE, nat_port: 30080, flags: CT_F.EXTERNAL, svc_id: 3 });

  // The pod's SYN-ACK leaving through the host interface.
  const synAck: Frame6Spec = { ...toClient, src: POD.addr, dst: CLIENT, hopLimit: 63, tcp: { sport: POD.port, dport: 40001, flags: TCP6_FLAGS.SYN | TCP6_FLAGS.ACK, seq: 7000, ack: 1001 } };
  const back = dp.run(PROG.HOST_EGRESS, buildFrame6(synAck));
  t.equal(back.retval, TC_ACT.UNSPEC);
  t.same(back.data, buildFrame6({ ...synAck, src: NODE, tcp: { ...synAck.tcp!, sport: 30080 } }), 'the reply comes from node:30080, nothing else changed');
  t.equal(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP)?.state, CT_STATE.ESTABLISHED, 'the SYN-ACK established the flow');

  // Later client packets keep the backend.
  const data: Frame6Spec = { ...fromClient, src: CLIENT, dst: NODE, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.ACK | TCP6_FLAGS.PSH, seq: 1001, ack: 7001 }, payload: Buffer.from('GET / HTTP/1.1\r\n\r\n!') };
  const fwd = dp.run(PROG.HOST_INGRESS, buildFrame6(data));
  t.same(fwd.data, buildFrame6({ ...data, dst: POD.addr, tcp: { ...data.tcp!, dport: POD.port } }));

  // The client's FIN is flagged on its entry (per direction, as IPv4); a RST closes both.
  dp.run(PROG.HOST_INGRESS, buildFrame6({ ...data, tcp: { ...data.tcp!, flags: TCP6_FLAGS.FIN | TCP6_FLAGS.ACK, seq: 1020 }, payload: undefined }));
  t.equal(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP)?.flags, CT_F.EXTERNAL | CT_F.FIN_SEEN);
  dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 40001, dport: 30080, flags: TCP6_FLAGS.RST, seq: 1021 } }));
  t.equal(ct6(dp, POD.addr, CLIENT, POD.port, 40001, IPPROTO.TCP)?.state, CT_STATE.CLOSED);
  dp.run(PROG.HOST_INGRESS, buildFrame6(syn));
  t.equal(ct6(dp, CLIENT, NODE, 40001, 30080, IPPROTO.TCP)?.state, CT_STATE.SYN_SENT, 'a new SYN on the tuple reopens it');

  const c = dp.extCounters(FRONTEND_KIND.NodePort);
  t.equal(c.connections, 2n, 'two flows counted under NodePort');
  t.equal(dp.svcCounters(3).connections, 2n);
});

t.test('IPv6 LoadBalancer IP and ExternalIP over UDP: DNAT only, replies reverse-translated (UDP checksum exact)', async (t) => {
  const dp = await hostDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: LB_IP, port: 53, proto: IPPROTO.UDP, svcId: 4, backendId: 40, cluster: [{ ...POD, port: 5353 }], flags: EXT | kind('LoadBalancer'), clusterIp: false });
  addService6(dp, { vip: LB_IP, port: 54, proto: IPPROTO.UDP, svcId: 5, backendId: 50, cluster: [{ ...POD, port: 5454 }], flags: EXT | kind('ExternalIP'), clusterIp: false });
  for (const [port, bport, k] of [[53, 5353, FRONTEND_KIND.LoadBalancer], [54, 5454, FRONTEND_KIND.ExternalIP]] as const) {
    const q: Frame6Spec = { ...fromClient, src: CLIENT, dst: LB_IP, udp: { sport: 5000, dport: port }, payload: Buffer.from('query') };
    const out = dp.run(PROG.HOST_INGRESS, buildFrame6(q));
    t.equal(out.retval, TC_ACT.UNSPEC);
    t.same(out.data, buildFrame6({ ...q, dst: POD.addr, udp: { sport: 5000, dport: bport } }), `port ${port}: to the pod`);
    const r: Frame6Spec = { ...toClient, src: POD.addr, dst: CLIENT, udp: { sport: bport, dport: 5000 }, payload: Buffer.from('answer') };
    const back = dp.run(PROG.HOST_EGRESS, buildFrame6(r));
    t.same(back.data, buildFrame6({ ...r, src: LB_IP, udp: { sport: port, dport: 5000 } }), `port ${port}: the answer from the frontend`);
    t.equal(dp.extCounters(k).connections, 1n);
  }
});

t.test('eTP=Local picks only local endpoints: a Local set without any is dropped (no_local_backend), a Cluster service without endpoints rejected', async (t) => {
  const dp = await hostDatapath(t);
  if (!dp) return;
  // eTP=Local: Cluster set holds a remote endpoint, the Local set the local one.
  addService6(dp, { vip: NODE, port: 30081, proto: IPPROTO.TCP, svcId: 6, backendId: 60, cluster: [REMOTE, POD], local: [POD], flags: EXT | SVC_F.EXTERNAL_LOCAL | kind('NodePort'), clusterIp: false });
  for (let i = 0; i < 8; i++) {
    const out = dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 41000 + i, dport: 30081, flags: TCP6_FLAGS.SYN } }));
    t.equal(parseFrame6(out.data).dst, POD.addr, `flow ${i}: the local endpoint`);
  }
  // eTP=Cluster with a remote and a local endpoint: the draw is among both, as IPv4 (no
  // preference for the local one). This node has no IPv6 SNAT address (sl_node_config6 empty:
  // ipv6-external-snat.test.ts has one), so a draw of the remote one is dropped, counted
  // snat_ports; 20 draws never all land on one endpoint by chance (2 in a million).
  addService6(dp, { vip: NODE, port: 30084, proto: IPPROTO.TCP, svcId: 10, backendId: 100, cluster: [REMOTE, POD], local: [POD], flags: EXT | kind('NodePort'), clusterIp: false });
  const picks = new Set<string>();
  let dropped = 0n;
  for (let i = 0; i < 20; i++) {
    const out = dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 44000 + i, dport: 30084, flags: TCP6_FLAGS.SYN } }));
    if (out.retval === TC_ACT.SHOT) dropped++;
    picks.add(out.retval === TC_ACT.UNSPEC ? parseFrame6(out.data).dst : `dropped (${out.retval})`);
  }
  t.same([...picks].sort(), [POD.addr, `dropped (${TC_ACT.SHOT})`].sort(), 'eTP=Cluster: the local endpoint and the remote one (dropped: no IPv6 SNAT address) are both drawn');
  t.equal(dp.drops('snat_ports'), dropped, 'each remote draw counted snat_ports');
  // Only a remote endpoint: dropped, counted snat_ports.
  addService6(dp, { vip: NODE, port: 30085, proto: IPPROTO.TCP, svcId: 11, backendId: 110, cluster: [REMOTE], local: [], flags: EXT | kind('NodePort'), clusterIp: false });
  t.equal(dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 45000, dport: 30085, flags: TCP6_FLAGS.SYN } })).retval, TC_ACT.SHOT);
  t.equal(dp.drops('snat_ports'), dropped + 1n, 'a remote-only eTP=Cluster service without an IPv6 SNAT address: dropped, counted snat_ports');

  // eTP=Local with no local endpoint: dropped, counted, nothing sent back (kube-proxy).
  addService6(dp, { vip: NODE, port: 30082, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: [REMOTE], local: [], flags: EXT | SVC_F.EXTERNAL_LOCAL | kind('NodePort'), clusterIp: false });
  const drop = dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 42000, dport: 30082, flags: TCP6_FLAGS.SYN } }));
  t.equal(drop.retval, TC_ACT.SHOT);
  t.equal(dp.drops('no_local_backend'), 1n);
  t.equal(ct6(dp, CLIENT, NODE, 42000, 30082, IPPROTO.TCP), null, 'no entry');

  // No endpoints at all: TCP RST+ACK and ICMPv6 port unreachable from the frontend, bounced out.
  addService6(dp, { vip: NODE, port: 30083, proto: IPPROTO.TCP, svcId: 8, backendId: 80, cluster: [], flags: EXT | kind('NodePort'), clusterIp: false });
  addService6(dp, { vip: NODE, port: 30083, proto: IPPROTO.UDP, svcId: 9, backendId: 90, cluster: [], flags: EXT | kind('NodePort'), clusterIp: false });
  const rst = dp.run(PROG.HOST_INGRESS, buildFrame6({ ...fromClient, src: CLIENT, dst: NODE, tcp: { sport: 43000, dport: 30083, flags: TCP6_FLAGS.SYN, seq: 99 } }));
  t.equal(rst.retval, TC_ACT.REDIRECT, 'sent back out of the interface');
  t.same(rst.data, buildFrame6({ ...toClient, src: NODE, dst: CLIENT, tcp: { sport: 30083, dport: 43000, flags: TCP6_FLAGS.RST | TCP6_FLAGS.ACK, seq: 0, ack: 100, window: 0 } }), 'RST+ACK from node:30083, byte for byte');
  const dgram = buildFrame6({ ...fromClient, src: CLIENT, dst: NODE, udp: { sport: 5001, dport: 30083 }, payload: Buffer.from('hello') });
  const unreach = dp.run(PROG.HOST_INGRESS, dgram);
  t.equal(unreach.retval, TC_ACT.REDIRECT);
  t.same(unreach.data, icmp6Error(NODE, CLIENT, dgram.subarray(ETH_HLEN), ICMP6.DEST_UNREACH, ICMP6.PORT_UNREACH, 0, toClient), 'ICMPv6 port unreachable quoting the datagram');
  t.equal(dp.drops('no_backend'), 2n);
  t.equal(dp.extCounters(FRONTEND_KIND.NodePort).rejected, 3n, 'the Local drop and both rejects counted per kind');
});

t.test('IPv6 not ours: ClusterIPs, unknown ports, pod flows\' entries, ICMPv6 pass untouched; source ranges close the service', async (t) => {
  const dp = await hostDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: 'fd00:96::10', port: 80, proto: IPPROTO.TCP, svcId: 10, backendId: 100, cluster: [POD] });
  const frames = [
    buildFrame6({ src: CLIENT, dst: 'fd00:96::10', tcp: { sport: 40000, dport: 80, flags: TCP6_FLAGS.SYN } }),
    buildFrame6({ src: CLIENT, dst: NODE, tcp: { sport: 40000, dport: 22, flags: TCP6_FLAGS.SYN } }),
    buildFrame6({ src: 'fe80::1', dst: 'ff02::1', icmp6: { type: 134, code: 0 }, payload: Buffer.alloc(12) }),
  ];
  for (const frame of frames) {
    const out = dp.run(PROG.HOST_INGRESS, frame);
    t.equal(out.retval, TC_ACT.UNSPEC);
    t.same(out.data, frame);
  }
  // A pod on this node reaching a ClusterIP whose backend is elsewhere: the reply arrives on the
  // host interface and matches the pod flow's REVERSE entry, which is the pod programs'.
  const base = { created_ns: 1n, last_seen_ns: BigInt(Number.MAX_SAFE_INTEGER), state: CT_STATE.ESTABLISHED, nat_saddr: '::', nat_sport: 0, svc_id: 10, flags: 0 };
  setCt6(dp, REMOTE.addr, 'fd00:10:244::50', 8080, 41000, IPPROTO.TCP, { ...base, type: CT_TYPE.REVERSE, nat_addr: 'fd00:96::10', nat_port: 80 });
  const reply = buildFrame6({ src: REMOTE.addr, dst: 'fd00:10:244::50', tcp: { sport: 8080, dport: 41000, flags: TCP6_FLAGS.ACK } });
  for (const prog of [PROG.HOST_INGRESS, PROG.HOST_EGRESS]) {
    const out = dp.run(prog, reply);
    t.equal(out.retval, TC_ACT.UNSPEC, `${prog}: a pod flow is the pod programs' business`);
    t.same(out.data, reply);
  }
  // A LoadBalancer with loadBalancerSourceRanges: not checked in IPv6 yet, so closed to all.
  addService6(dp, { vip: LB_IP, port: 443, proto: IPPROTO.TCP, svcId: 11, backendId: 110, cluster: [POD], flags: EXT | SVC_F.SRC_RANGES | kind('LoadBalancer'), clusterIp: false });
  const ranged = dp.run(PROG.HOST_INGRESS, buildFrame6({ src: CLIENT, dst: LB_IP, tcp: { sport: 40002, dport: 443, flags: TCP6_FLAGS.SYN } }));
  t.equal(ranged.retval, TC_ACT.SHOT);
  t.equal(dp.drops('src_range'), 1n);
});
