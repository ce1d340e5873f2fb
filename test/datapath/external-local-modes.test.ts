// externalTrafficPolicy Local is the same in every external mode (issue 15: "eTP=Local is
// unchanged by the mode"): the real host.bpf.o loaded with sl_external_mode SNAT, Tunnel and DSR
// in turn, one service with a local and a remote endpoint (Local set: the local one) and one with
// only a remote endpoint. In each mode the first is DNATed to the local pod and handed to the
// kernel — no SNAT, no wrapping, conntrack flagged external only — and the second is dropped
// (`no_local_backend`), never forwarded to the other node. The control: a Cluster-policy service
// with the same remote endpoint is wrapped (Tunnel, DSR) or SNATed (SNAT) by the same object.
import t from 'tap';
import { BE_F, CT_F, EXTERNAL_MODE, IPPROTO, SVC_F, TUNNEL } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, TCP_FLAGS } from '../../src/packet/index.js';
import { HOST_OBJECT, loadDatapath, PROG, TC_ACT, tupleKey } from './harness.js';

const CLIENT = '198.51.100.7';
const NODE_A = '192.168.50.2';
const NODE_B = '192.168.50.3';
const LOCAL = { addr: '10.244.1.11', port: 8080, flags: BE_F.LOCAL };
const REMOTE = { addr: '10.244.2.12', port: 8080, flags: 0, nodeAddr: NODE_B };

const syn = (dport: number, sport: number) =>
  buildFrame({ ip: { src: CLIENT, dst: NODE_A, id: 7, ttl: 57 }, tcp: { sport, dport, flags: TCP_FLAGS.SYN, seq: 1000 } });

for (const [mode, value] of [['SNAT', EXTERNAL_MODE.SNAT], ['Tunnel', EXTERNAL_MODE.TUNNEL], ['DSR', EXTERNAL_MODE.DSR]] as const) {
  t.test(`${mode} mode: eTP=Local DNATs to the local pod only, never forwards; Cluster policy does`, async (t) => {
    const dp = await loadDatapath(t, { object: HOST_OBJECT, rodata: { sl_external_mode: value } });
    if (!dp) return;
    dp.setNodeConfig(NODE_A, 61000, 61009);
    dp.addTunnelNode(NODE_B);
    const local = SVC_F.EXTERNAL | SVC_F.EXTERNAL_LOCAL;
    dp.addService({ vip: NODE_A, port: 30081, proto: IPPROTO.TCP, svcId: 3, backendId: 30, cluster: [REMOTE, LOCAL], local: [LOCAL], flags: local });
    dp.addService({ vip: NODE_A, port: 30082, proto: IPPROTO.TCP, svcId: 4, backendId: 40, cluster: [REMOTE], local: [], flags: local });
    dp.addService({ vip: NODE_A, port: 30083, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [REMOTE], flags: SVC_F.EXTERNAL });

    // A few source ports: a random pick over the Cluster set would reach REMOTE for some of them.
    for (let sport = 41000; sport < 41008; sport++) {
      const out = dp.run(PROG.HOST_INGRESS, syn(30081, sport));
      t.equal(out.retval, TC_ACT.UNSPEC, `${sport}: handed to the kernel for the local pod`);
      t.same([out.parsed.ip?.src, out.parsed.ip?.dst, out.parsed.ip?.protocol, out.parsed.tcp?.dport], [CLIENT, LOCAL.addr, IPPROTO.TCP, LOCAL.port], `${sport}: DNAT only, not wrapped`);
      t.same(checksumProblems(out.parsed), []);
      t.equal(dp.ct(tupleKey(CLIENT, NODE_A, sport, 30081, IPPROTO.TCP))?.flags, CT_F.EXTERNAL, `${sport}: tracked as external only (no SNAT, tunnel or DSR flag)`);
    }

    const frame = syn(30082, 42000);
    const dropped = dp.run(PROG.HOST_INGRESS, frame);
    t.same([dropped.retval, dp.drops('no_local_backend')], [TC_ACT.SHOT, 1n], 'no local backend: dropped and counted, not forwarded');
    t.equal(dp.ct(tupleKey(CLIENT, NODE_A, 42000, 30082, IPPROTO.TCP)), null, 'no entry for it');

    // Control: the same remote endpoint under Cluster policy leaves the node by the mode's path.
    const fwd = dp.run(PROG.HOST_INGRESS, syn(30083, 43000));
    const ct = dp.ct(tupleKey(CLIENT, NODE_A, 43000, 30083, IPPROTO.TCP));
    if (mode === 'SNAT') {
      t.same([fwd.parsed.ip?.src, fwd.parsed.ip?.dst], [NODE_A, REMOTE.addr], 'Cluster policy: SNATed to node B\'s pod');
      t.equal(ct?.flags, CT_F.EXTERNAL | CT_F.SNAT);
    } else {
      t.same([fwd.parsed.ip?.src, fwd.parsed.ip?.dst, fwd.parsed.udp?.dport], [NODE_A, NODE_B, TUNNEL.PORT_DEFAULT], 'Cluster policy: wrapped for node B');
      t.ok(((ct?.flags ?? 0) & CT_F.TUNNEL) !== 0, 'tracked as tunnelled');
    }
  });
}
