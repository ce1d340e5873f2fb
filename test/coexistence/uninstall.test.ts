// Issue 13 §6: after `sluice-agent cleanup` nothing of Sluice is attached — no cgroup link on
// the node's cgroup, no Sluice TC filter on any interface of the node, no pins — a foreign
// filter on the same hooks is untouched, and kube-proxy-shaped rules serve the service again
// (from a client balanced at connect time before, and from one translated on its veth before).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { isSluiceFilter } from '../../src/datapath/attach.js';
import { interfaceNames, listTcFilters } from '../../src/datapath/tc-filters.js';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { ModelInput } from '../../src/model/types.js';
import { chainPackets, iptablesRestore } from '../../src/testbed/iptables.js';
import { kubeProxyRules } from '../../src/testbed/kube-proxy-rules.js';
import { netnsPath } from '../../src/testbed/netns.js';
import { createAgentBed, expectServed, NODE_NAME, nodeObject, portKey, service, slice, summarize } from '../e2e/agent-bed.js';
import { attachNeighbour } from './policy-neighbour.js';

const VIP = '10.96.0.76';
const PORTS = [{ name: 'http', port: 80 }];

const cgroupPrograms = (cg: string) =>
  JSON.parse(execFileSync('bpftool', ['-j', 'cgroup', 'show', cg], { encoding: 'utf8' }).trim() || '[]') as { name: string }[];

t.test('sluice-agent cleanup leaves nothing of Sluice and hands the service back to kube-proxy', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  const nodeObj = nodeObject();
  const svcObj = service('web', VIP, PORTS);
  const sliceObj = slice('web-1', 'web', ['web-a', 'web-b'], PORTS);
  await bed.writeManifest('node.yaml', [nodeObj]);
  await bed.writeManifest('web.yaml', [svcObj, sliceObj]);
  const input = {
    services: [svcObj], endpointSlices: [sliceObj], nodes: [nodeObj], nodeName: NODE_NAME,
    config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' },
  } as unknown as ModelInput;
  const rules = kubeProxyRules(computeDesiredState(input).state, { clusterCidr: '10.244.0.0/16' });
  await iptablesRestore(bed.topo.nodeNs, rules.text);
  const svcChain = rules.chains.get(portKey('web', 'http'))?.svc as string;
  const neighbour = await attachNeighbour(bed.run, loadNative(), bed.topo.nodeNs,
    { ifindex: bed.tcClient.hostIfindex, ifname: bed.tcClient.hostIfname, direction: 'ingress' });

  const agent = bed.startAgent();
  await bed.waitForSynced(90_000);
  await bed.waitFor('TC programs on every pod veth', async () => (await bed.status()).programs.filter((p) => p.hook === 'tc' && p.attached).length >= 10, 60_000);
  t.equal(cgroupPrograms(bed.clientCgroup).length, 8, 'before: eight connect-time programs (both families) on the cgroup');
  const k0 = await chainPackets(bed.topo.nodeNs, 'nat', svcChain);
  const before = await bed.bothPaths(VIP, 80, 6, 3000);
  expectServed(t, [...before['connect-time'], ...before.tc], ['web-a', 'web-b'], 'with Sluice');
  t.equal(await chainPackets(bed.topo.nodeNs, 'nat', svcChain), k0, 'with Sluice, kube-proxy\'s chain saw none of it');

  await agent.kill('SIGTERM');
  t.equal(cgroupPrograms(bed.clientCgroup).length, 8, 'an ordinary stop keeps the dataplane (links stay)');
  const r = await bed.runCleanupCommand();
  t.equal(r.code, 0, 'sluice-agent cleanup exits 0', { stderr: r.stderr.slice(-2000) });

  t.same(cgroupPrograms(bed.clientCgroup), [], 'no program left on the cgroup');
  const netns = netnsPath(bed.topo.nodeNs);
  const names = [...(await interfaceNames(netns)).values()];
  const listed = await listTcFilters(names.flatMap((ifname) => (['ingress', 'egress'] as const).map((direction) => ({ ifname, direction }))), netns);
  const left = [...listed].flatMap(([hook, filters]) => filters.filter((f) => isSluiceFilter(f, hook.endsWith('/ingress') ? 'ingress' : 'egress')).map(() => hook));
  t.same(left, [], `no Sluice filter on any of the node's ${names.length} interfaces`);
  const foreign = listed.get(`${bed.tcClient.hostIfname}/ingress`) ?? [];
  t.same(foreign.map((f) => [f.handle, f.progName]), [[1, 'fx_policy']], 'the foreign filter is still there, alone');
  t.notOk(existsSync(bed.pinDir), 'the pin directory is gone');

  const after = await bed.bothPaths(VIP, 80, 6, 3000);
  const all = [...after['connect-time'], ...after.tc];
  t.equal(summarize(all).failed, 0, 'both clients still reach the service', { codes: summarize(all).codes });
  t.ok(await chainPackets(bed.topo.nodeNs, 'nat', svcChain) >= k0 + 12, 'now through kube-proxy\'s rules (its KUBE-SVC chain counted every connection)');
  t.ok(after['connect-time'].every((a) => !a.ok || a.peername?.address === VIP), 'the clients talk to the ClusterIP, translated by iptables');
  t.ok(neighbour.packets() > 0n, 'the foreign program kept running');

  const again = await bed.runCleanupCommand();
  t.equal(again.code, 0, 'cleanup again, with nothing left: still exits 0');
});
