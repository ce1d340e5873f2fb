// internalTrafficPolicy=Local: pod traffic uses only the Local set; with no local backend the
// packet is dropped and counted (while a service with no endpoints at all is rejected).
import t from 'tap';
import { BE_F, IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, type Datapath } from './harness.js';

const VIP = '10.96.0.40';
const CLIENT = '10.244.1.10';
const REMOTE = [{ addr: '10.244.7.1', port: 80 }, { addr: '10.244.7.2', port: 80 }];
const LOCAL = [{ addr: '10.244.1.50', port: 80, flags: BE_F.LOCAL }];

let nextPort = 40000;
function syn(dp: Datapath) {
  return dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: CLIENT, dst: VIP }, tcp: { sport: nextPort++, dport: 80, flags: TCP_FLAGS.SYN },
  }));
}

t.test('iTP=Local uses only the Local set', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: REMOTE, local: LOCAL, flags: SVC_F.INTERNAL_LOCAL });
  const picks = new Set<string | undefined>();
  for (let i = 0; i < 40; i++) picks.add(syn(dp).parsed.ip?.dst);
  t.same([...picks], ['10.244.1.50'], 'every flow went to the local backend');

  // eTP=Local alone does not restrict pod (internal) traffic: the Cluster set is used.
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: REMOTE, local: LOCAL, flags: SVC_F.EXTERNAL_LOCAL });
  const cluster = new Set<string | undefined>();
  for (let i = 0; i < 40; i++) cluster.add(syn(dp).parsed.ip?.dst);
  t.same([...cluster].sort(), ['10.244.7.1', '10.244.7.2'], 'eTP=Local: pods use the Cluster set');
});

t.test('iTP=Local without a local backend drops and counts; without any endpoint it rejects', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: REMOTE, local: [], flags: SVC_F.INTERNAL_LOCAL });
  for (let i = 0; i < 3; i++) t.equal(syn(dp).retval, TC_ACT.SHOT, `flow ${i} dropped`);
  t.equal(dp.drops('no_local_backend'), 3n, 'counted as no_local_backend');
  t.equal(dp.drops('no_backend'), 0n);
  t.equal(dp.svcCounters(5).rejected, 3n);
  t.equal(dp.ctCount(), 0);

  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 51, cluster: [], local: [], flags: SVC_F.INTERNAL_LOCAL });
  t.equal(syn(dp).retval, TC_ACT.REDIRECT, 'no endpoints anywhere: rejected (RST), as kube-proxy');
  t.equal(dp.drops('no_backend'), 1n);
  t.equal(dp.drops('no_local_backend'), 3n);
});
