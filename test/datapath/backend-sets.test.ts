// Selection uses exactly the set user space wrote (terminating endpoints only appear there as a
// fallback), and a flow whose backend has left the set keeps it through conntrack.
import t from 'tap';
import { BE_F, IPPROTO } from '../../src/bpf/sluice-structs.js';
import { buildFrame, checksumProblems, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, type Datapath } from './harness.js';

const VIP = '10.96.0.30';
const CLIENT = '10.244.1.10';
const SERVING = { addr: '10.244.2.11', port: 8080 };
const TERMINATING = { addr: '10.244.2.12', port: 8080, flags: BE_F.TERMINATING };
const REPLACEMENT = { addr: '10.244.3.21', port: 9090 };

let nextPort = 30000;
function syn(dp: Datapath, sport = nextPort++): string {
  const p = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: CLIENT, dst: VIP }, tcp: { sport, dport: 80, flags: TCP_FLAGS.SYN },
  })).parsed;
  return `${p.ip?.dst}:${p.tcp?.dport}`;
}

t.test('only ordinals within the set are chosen; a terminating-only set is used as the fallback', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  // Block 10 holds a terminating endpoint at ordinal 1 (written for another service sharing the
  // block), but this service's set is ordinal 0 only: the slot past `count` is never used.
  dp.addService({ vip: '10.96.0.31', port: 80, proto: IPPROTO.TCP, svcId: 2, backendId: 10, cluster: [SERVING, TERMINATING] });
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [SERVING] });
  const picks = new Set<string>();
  for (let i = 0; i < 40; i++) picks.add(syn(dp));
  t.same([...picks], ['10.244.2.11:8080'], 'the serving backend only; the slot past count stays unused');

  // No serving endpoint left: user space writes the terminating one as the set, and it is used.
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 11, cluster: [TERMINATING] });
  t.equal(syn(dp), '10.244.2.12:8080', 'terminating endpoint serves as the fallback');
});

t.test('a flow keeps its backend after the backend leaves the service', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: [SERVING] });
  t.equal(syn(dp, 31000), '10.244.2.11:8080');

  // The service switches to a fresh block without the old backend; the old block is deleted.
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 11, cluster: [REPLACEMENT] });
  const backends = dp.obj.map('sl_backends4');
  for (const key of backends.keys()) if (key.readUInt32LE(0) === 10) backends.delete(key);

  for (let i = 0; i < 5; i++) {
    const p = dp.run(PROG.FROM_POD, buildFrame({
      ip: { src: CLIENT, dst: VIP }, tcp: { sport: 31000, dport: 80, flags: TCP_FLAGS.ACK, seq: 1 + i },
    })).parsed;
    t.match(p.ip, { dst: '10.244.2.11' }, `packet ${i} of the old flow still goes to the removed backend`);
    t.same(checksumProblems(p), []);
  }
  const reply = dp.run(PROG.TO_POD, buildFrame({
    ip: { src: SERVING.addr, dst: CLIENT }, tcp: { sport: 8080, dport: 31000, flags: TCP_FLAGS.ACK },
  }));
  t.equal(reply.retval, TC_ACT.UNSPEC);
  t.match(reply.parsed.ip, { src: VIP }, 'its replies are still reverse-NATed');
  t.equal(syn(dp), '10.244.3.21:9090', 'new flows use the new set');
});

t.test('from Kubernetes objects to the program: terminating endpoints serve only when no ready one is left', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  const { computeDesiredState } = await import('../../src/model/desired-state.js');
  const { serviceTarget } = await import('../../src/dataplane/service-target.js');
  const { DEFAULT_NODE, NODE, ep, service, slice } = await import('../model/builders.js');
  const program = (endpoints: Record<string, unknown>[], backendId: number) => {
    const state = computeDesiredState({
      services: [service('web', { clusterIP: VIP })], endpointSlices: [slice('web', endpoints)], nodes: [DEFAULT_NODE], nodeName: NODE,
      config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
    }).state;
    const port = state.services.get('default/web:http/TCP/IPv4');
    if (!port) throw new Error('no desired port');
    const target = serviceTarget(port);
    const cluster = target.block.slice(0, target.count).map((b) => ({ addr: b.addr, port: b.port, flags: b.flags }));
    dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId, cluster });
  };
  // One ready endpoint and one serving-but-terminating (a pod shutting down).
  program([ep('10.244.2.11', { ready: true }), ep('10.244.2.12', { ready: false, serving: true, terminating: true })], 20);
  const picks = new Set<string>();
  for (let i = 0; i < 40; i++) picks.add(syn(dp));
  t.same([...picks], ['10.244.2.11:8080'], '40 new flows: never the terminating endpoint while a ready one exists');
  // The ready one is gone: the terminating one is the fallback and serves.
  program([ep('10.244.2.12', { ready: false, serving: true, terminating: true })], 21);
  t.equal(syn(dp), '10.244.2.12:8080', 'only terminating left: it serves new flows');
});
