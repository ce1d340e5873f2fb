// Issue 13 §5 (AKS): Sluice beside kube-proxy. The node namespace holds kube-proxy-shaped
// iptables rules generated from the same Service and EndpointSlice objects the agent reads.
// Two clients stream short TCP connections to the ClusterIP throughout — one in the cgroup with
// the connect-time programs, one outside it (translated on its veth by the TC programs):
//   kube-proxy alone   → KUBE-SVC packet counters rise;
//   start sluice-agent → connections go through Sluice (KUBE-SVC counters stop, Sluice counts);
//   sluice-agent cleanup → kube-proxy's rules serve again (counters rise again).
// Zero failed connections across both switches, and kube-proxy's rules are never touched.
// (Client ports come round again within seconds at this rate: a new connection on the tuple of a
// flow Sluice closed is what made this test flaky, see docs/coexistence.md.)
import t from 'tap';
import type { CountersView } from '../../src/admin/types.js';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { ModelInput } from '../../src/model/types.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { chainPackets, iptablesRestore, iptablesSave } from '../../src/testbed/iptables.js';
import { kubeProxyRules } from '../../src/testbed/kube-proxy-rules.js';
import { TrafficClient } from '../traffic/traffic-client.js';
import type { LoopStats } from '../traffic/traffic-client.js';
import { createAgentBed, NODE_NAME, nodeObject, portKey, service, slice } from '../e2e/agent-bed.js';

const VIP = '10.96.0.75';
const PORTS = [{ name: 'http', port: 80 }];
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The rules without their counters: what must stay byte for byte kube-proxy's. */
const ruleText = (saved: string) => saved.split('\n').filter((l) => l.startsWith('-A ') || /^\[\d+:\d+\] -A /.test(l)).map((l) => l.replace(/^\[\d+:\d+\] /, '')).join('\n');

t.test('Sluice beside kube-proxy: in, out, zero failed connections', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  const nodeObj = nodeObject();
  const svcObj = service('web', VIP, PORTS);
  const sliceObj = slice('web-1', 'web', ['web-a', 'web-b', 'web-c'], PORTS);
  await bed.writeManifest('node.yaml', [nodeObj]);
  await bed.writeManifest('web.yaml', [svcObj, sliceObj]);

  const input: ModelInput = {
    services: [svcObj] as unknown as ModelInput['services'],
    endpointSlices: [sliceObj] as unknown as ModelInput['endpointSlices'],
    nodes: [nodeObj] as unknown as ModelInput['nodes'],
    nodeName: NODE_NAME,
    config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
  };
  const rules = kubeProxyRules(computeDesiredState(input).state, { clusterCidr: '10.244.0.0/16' });
  await iptablesRestore(bed.topo.nodeNs, rules.text);
  const svcChain = rules.chains.get(portKey('web', 'http'))?.svc;
  if (!svcChain) throw new Error(`no KUBE-SVC chain generated (have ${[...rules.chains.keys()].join(', ')})`);
  const kubeProxyServed = () => chainPackets(bed.topo.nodeNs, 'nat', svcChain);
  const natBefore = ruleText(await iptablesSave(bed.topo.nodeNs, 'nat'));
  const filterBefore = ruleText(await iptablesSave(bed.topo.nodeNs, 'filter'));

  const ct = await TrafficClient.start(bed.run, bed.client.ns, bed.clientCgroup);
  const tc = await TrafficClient.start(bed.run, bed.tcClient.ns, await createCgroup(await bed.run.cgroup(), 'tc-clients'));
  const target = { host: VIP, port: 80, timeoutMs: 3000 };
  await ct.startLoop('ct', target, { proto: 'tcp', workers: 2, gapMs: 10 });
  await tc.startLoop('tc', target, { proto: 'tcp', workers: 2, gapMs: 10 });
  let stopped: Promise<LoopStats[]> | undefined;
  const stopAll = () => (stopped ??= Promise.all([ct.stopLoop('ct'), tc.stopLoop('tc')]));
  t.teardown(() => stopAll().then(() => undefined, () => undefined));

  // kube-proxy alone.
  const k0 = await kubeProxyServed();
  await pause(1500);
  const k1 = await kubeProxyServed();
  t.ok(k1 > k0, `kube-proxy's KUBE-SVC chain serves the stream (${k0} → ${k1} packets)`);

  // Sluice starts: new connections are translated before iptables sees them.
  const agent = bed.startAgent();
  await bed.waitForSynced(90_000);
  await bed.waitFor('TC programs on every pod veth', async () => (await bed.status()).programs.filter((p) => p.hook === 'tc' && p.attached).length >= 10, 60_000);
  await pause(1000); // connections kube-proxy opened just before finish
  const s0 = await kubeProxyServed();
  const c0 = await bed.ctl<CountersView>(['counters']);
  await pause(2000);
  const s1 = await kubeProxyServed();
  const c1 = await bed.ctl<CountersView>(['counters']);
  const conns = (c: CountersView) => c.services.filter((s) => s.name === 'web').reduce((n, s) => n + s.connections, 0);
  t.equal(s1, s0, 'with Sluice running, kube-proxy\'s KUBE-SVC chain sees no new connection');
  t.ok(conns(c1) > conns(c0), `Sluice's TC path counts the TC client's connections (${conns(c0)} → ${conns(c1)})`);
  t.equal(ruleText(await iptablesSave(bed.topo.nodeNs, 'nat')), natBefore, 'kube-proxy\'s nat rules untouched');
  t.equal(ruleText(await iptablesSave(bed.topo.nodeNs, 'filter')), filterBefore, 'kube-proxy\'s filter rules untouched');

  // Uninstall: the agent stops, `sluice-agent cleanup` removes Sluice; kube-proxy serves again.
  await agent.kill('SIGTERM');
  // The bed's runCleanupCommand allows 30 s; on a loaded CI machine the cleanup's process start
  // plus its 5 s drain took longer (the agent's own start took 35 s in that run).
  const r = await runCommand(bed.agentArgv(['cleanup', '--pin-dir', bed.pinDir, '--cgroup', bed.clientCgroup, '--interfaces', bed.ifacePattern, '--log-level', 'info']), {
    allowFailure: true, timeoutMs: 120_000,
  });
  t.equal(r.code, 0, 'sluice-agent cleanup succeeds', { stderr: r.stderr.slice(-2000) });
  const u0 = await kubeProxyServed();
  await pause(1500);
  const u1 = await kubeProxyServed();
  t.ok(u1 > u0, `after cleanup kube-proxy's KUBE-SVC chain serves again (${u0} → ${u1})`);

  const [ctStats, tcStats] = await stopAll();
  for (const [name, s] of [['connect-time client', ctStats], ['TC-path client', tcStats]] as const) {
    t.equal(s?.failures, 0, `${name}: zero failed connections across both switches`, { samples: s?.failSamples });
    t.ok((s?.attempts ?? 0) >= 50, `${name}: streamed ${s?.attempts} connections`);
    t.same(Object.keys(s?.backends ?? {}).sort(), ['web-a', 'web-b', 'web-c'], `${name}: spread over the three endpoints`);
  }
  t.equal(ruleText(await iptablesSave(bed.topo.nodeNs, 'nat')), natBefore, 'kube-proxy\'s nat rules still untouched after cleanup');
});
