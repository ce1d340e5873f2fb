// kube-proxy parity of external traffic (issue 14): the scenario table of
// test/external/external-scenarios.ts run on one two-node bed twice — first against
// kube-proxy-shaped iptables rules in the node namespaces (src/testbed/kube-proxy-rules.ts,
// generated per node from the same objects the agents read; no Sluice agent), then, with those
// tables emptied, against a sluice-agent per node. Every row must give its expected outcome on
// both, and the two outcomes must be equal except in the rows the table marks as a documented
// difference (docs/external-traffic.md, "Parity with kube-proxy").
import t from 'tap';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { computeDesiredState } from '../../src/model/desired-state.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createCluster } from '../../src/testbed/cluster.js';
import { clusterAgents, writeManifest } from '../../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../../src/testbed/cluster-agent.js';
import { startEchoServer } from '../../src/testbed/echo.js';
import { chainCounters, chainPackets, iptablesRestore, iptablesSave } from '../../src/testbed/iptables.js';
import { kubeProxyRules } from '../../src/testbed/kube-proxy-rules.js';
import { ipIn } from '../../src/testbed/netns.js';
import { requirePrivileges } from '../helpers/privileges.js';
import {
  CLIENT_IP, CLIENT_ROUTES, clusterObjects, NS, describe, matches, modelInput, observeAll, POD_CIDR, startProbers, SCENARIOS,
} from './external-scenarios.js';
import type { Observed } from './external-scenarios.js';

// A two-node bed with real agents: on a loaded 2-core machine more than tap's default 300 s.
t.setTimeout(600_000);

t.test('external traffic: kube-proxy-shaped iptables and Sluice give the same outcomes', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const started = Date.now();

  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  run.handleProcessEvents();
  const c = await createCluster(run, { nodes: [['web-a0'], ['web-b0']], clients: 1, clientRoutes: CLIENT_ROUTES });
  if (c.clients[0]?.ip !== CLIENT_IP) throw new Error(`the table assumes the client at ${CLIENT_IP}, the bed gave ${c.clients[0]?.ip}`);
  // A node has a default route (a router on the fabric, absent here): what kube-proxy does not
  // translate is routed on and meets the filter table's FORWARD chain, as on a real node,
  // instead of an ICMP "no route" from a node that knows none.
  for (const node of c.nodes) await ipIn(node.ns, ['route', 'add', 'default', 'via', '192.168.50.254', 'dev', 'eth0']);
  for (const node of c.nodes) for (const p of node.pods) await startEchoServer(run, { name: p.name, ns: p.ns, tcp: [8080] });

  const work = await mkdtemp(join(tmpdir(), 'sluice-parity-'));
  run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifests = join(work, 'manifests');
  await mkdir(manifests);
  const objects = clusterObjects(c);
  await writeManifest(manifests, 'cluster.json', objects);
  const agents = await clusterAgents(run, c.nodes, work, manifests);
  const [agentA] = agents as [NodeAgent, NodeAgent];
  const probers = await startProbers(run, c, agentA.cgroup);

  // kube-proxy: each node's rules from the same objects, as that node's kube-proxy would write them.
  const kubeProxy = new Map<string, Observed>();
  const extChains: { ns: string; chain: string }[] = [];
  for (const node of c.nodes) {
    const rules = kubeProxyRules(computeDesiredState(modelInput(objects, node.name)).state, { clusterCidr: POD_CIDR, nodeIp: node.ip });
    await iptablesRestore(node.ns, rules.text);
    for (const names of rules.chains.values()) extChains.push({ ns: node.ns, chain: names.ext });
  }
  const setupDone = Date.now();
  await t.test('kube-proxy-shaped iptables rules, no agent', async (t) => {
    const observed = await observeAll(c, SCENARIOS, probers);
    for (const [i, s] of SCENARIOS.entries()) {
      const o = observed[i] as Observed;
      kubeProxy.set(s.name, o);
      const want = s.kubeProxy?.expect ?? s.expect;
      t.ok(matches(o, want), `${s.name}: ${describe(o)}`, { want: describe(want), observed: o });
    }
    // The refusals are kube-proxy's own rules at work (a drop would look the same if node A
    // just had nowhere to route the packet): each rule counted the probe's packets.
    const [nodeA] = c.nodes as [(typeof c.nodes)[0]];
    const filterA = await iptablesSave(nodeA.ns, 'filter');
    for (const [chain, needle] of [
      ['KUBE-EXTERNAL-SERVICES', `${NS}/etp-local:http has no local endpoints`],
      ['KUBE-EXTERNAL-SERVICES', `${NS}/empty:http has no endpoints`],
      ['KUBE-PROXY-FIREWALL', `${NS}/ranges-no:http traffic not accepted`],
    ] as const) {
      const rule = chainCounters(filterA, chain).find((r) => r.rule.includes(needle));
      t.ok(rule && rule.packets > 0, `node A's ${chain} rule "${needle}" counted the probe (${rule?.packets ?? 'no such rule'})`);
    }
    let translated = 0;
    for (const { ns, chain } of extChains) {
      if ((await iptablesSave(ns, 'nat')).includes(`:${chain} `)) translated += await chainPackets(ns, 'nat', chain);
    }
    t.ok(translated > 0, `kube-proxy's KUBE-EXT chains translated the external flows (${translated} packets)`);
  });
  const kubeProxyDone = Date.now();

  // Empty the node tables (a restore without --noflush flushes the tables it names and deletes
  // their chains), then the same scenarios through Sluice.
  for (const node of c.nodes) await iptablesRestore(node.ns, '*nat\nCOMMIT\n*filter\nCOMMIT\n', 'nft', { flush: true });
  // SNAT explicitly: kube-proxy's behaviour is what the table compares.
  await Promise.all(agents.map((a) => a.start(['--external-mode', 'SNAT'])));
  for (const a of agents) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = await a.ctl<{ sync: { state: string } }>(['status']).catch(() => undefined);
      if (st?.sync.state === 'synced') break;
      if (Date.now() > deadline) throw new Error(`${a.node.name} never synced:\n${a.tail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const agentsUp = Date.now();
  await t.test('Sluice, no iptables rules', async (t) => {
    const observed = await observeAll(c, SCENARIOS, probers);
    for (const [i, s] of SCENARIOS.entries()) {
      const o = observed[i] as Observed;
      t.ok(matches(o, s.expect), `${s.name}: ${describe(o)}`, { want: describe(s.expect), observed: o });
      const k = kubeProxy.get(s.name);
      if (!k) continue;
      if (s.kubeProxy) t.notOk(matches(k, s.expect), `${s.name}: differs from kube-proxy as documented (${s.kubeProxy.why})`);
      else t.ok(matches(k, s.expect), `${s.name}: the same outcome as kube-proxy`);
    }
  });
  t.comment(`timing: bed ${((setupDone - started) / 1000).toFixed(1)} s, kube-proxy scenarios ${((kubeProxyDone - setupDone) / 1000).toFixed(1)} s, ` +
    `agents up ${((agentsUp - kubeProxyDone) / 1000).toFixed(1)} s, Sluice scenarios ${((Date.now() - agentsUp) / 1000).toFixed(1)} s`);
});
