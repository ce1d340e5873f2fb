// Issue 13 §3: Sluice shares the pod veth hooks with a foreign TC program shaped like the AWS
// network policy agent's (priority 1, direct action, handle 1, counts every packet, drops one
// destination, ends the chain with TC_ACT_OK; bpf/test/policy_neighbour.bpf.c). Whatever the
// attach order — the foreign program attached before the agent starts, or after it, when it lands
// in front of Sluice and the agent's periodic check must put Sluice back at the head — on both
// hooks: the foreign program counts the traffic, Sluice translates it (TC path), the foreign drop
// still drops, and `sluice-agent cleanup` leaves the foreign filters in place.
//
//   client-tc ──veth── node ──veth── web-a   service web (ClusterIP VIP:80) → web-a, web-b, web-c
//   neighbours: client-tc's veth ingress (what it sends) drops web-b;
//               client-tc's veth egress (what it receives) drops nothing, records what it sees;
//               web-c's veth egress (what web-c receives) drops web-c.
//   → only web-a answers; the neighbours saw backend addresses going out and the VIP coming back.
import t from 'tap';
import type { Test } from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import type { TcDirection } from '../../src/bpf/native.js';
import { isSluiceFilter } from '../../src/datapath/attach.js';
import { listTcFilters, tcHookKey } from '../../src/datapath/tc-filters.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { Attachment } from '../../src/testbed/topology.js';
import { createAgentBed, nodeObject, POD_IP, service, slice, summarize } from '../e2e/agent-bed.js';
import type { AgentBed } from '../e2e/agent-bed.js';
import { attachNeighbour, NEIGHBOUR_FILTER } from './policy-neighbour.js';
import type { Neighbour } from './policy-neighbour.js';

const VIP = '10.96.0.70';
const PORTS = [{ name: 'http', port: 80 }];
const CLIENT = POD_IP['client-tc'];

interface HookSpec {
  pod: Attachment;
  direction: TcDirection;
  drop?: string;
}

/** [foreign first?, Sluice first?] on each hook, read from the kernel in run order. */
async function order(bed: AgentBed, hooks: HookSpec[]): Promise<string[]> {
  const listed = await listTcFilters(hooks.map((h) => ({ ifname: h.pod.hostIfname, direction: h.direction })), netnsPath(bed.topo.nodeNs));
  return hooks.map((h) => {
    const filters = listed.get(tcHookKey({ ifname: h.pod.hostIfname, direction: h.direction })) ?? [];
    return filters.map((f) => (isSluiceFilter(f, h.direction) ? 'sluice' : f.handle === NEIGHBOUR_FILTER.handle ? 'foreign' : `other(${f.handle})`)).join(',');
  });
}

async function attachAll(bed: AgentBed, hooks: HookSpec[]): Promise<Neighbour[]> {
  const native = loadNative();
  const out: Neighbour[] = [];
  for (const h of hooks) {
    out.push(await attachNeighbour(bed.run, native, bed.topo.nodeNs, { ifindex: h.pod.hostIfindex, ifname: h.pod.hostIfname, direction: h.direction }, h.drop));
  }
  return out;
}

async function checkTraffic(t: Test, bed: AgentBed, neighbours: Neighbour[]): Promise<void> {
  const [out, back, webC] = neighbours as [Neighbour, Neighbour, Neighbour];
  const before = neighbours.map((n) => n.packets());
  const attempts = await bed.traffic('tc', VIP, 80, 24, 'tcp', 700);
  const s = summarize(attempts);
  t.same(Object.keys(s.pods), ['web-a'], 'only web-a answers: web-b and web-c are dropped by the neighbours', { pods: s.pods, codes: s.codes });
  t.ok(s.ok > 0 && s.failed > 0, `some connections answered (${s.ok}), some dropped (${s.failed})`);
  t.ok(attempts.every((a) => !a.ok || (a.peername?.address === VIP && a.seenPeer?.address === CLIENT)),
    'Sluice translated every answered connection: the client talks to the VIP, web-a sees the client\'s own address');
  neighbours.forEach((n, i) => t.ok(n.packets() > (before[i] ?? 0n), `the neighbour on ${n.where} counted the traffic`));
  t.ok(out.dropped() > 0n && webC.dropped() > 0n, 'both dropping neighbours dropped packets', { out: out.dropped(), webC: webC.dropped() });
  const sent = out.seen();
  t.ok(sent.has(`${CLIENT}>${POD_IP['web-a']}`) && sent.has(`${CLIENT}>${POD_IP['web-b']}`), 'going out, the neighbour behind Sluice sees backend addresses', { seen: [...sent.keys()] });
  t.notOk(sent.has(`${CLIENT}>${VIP}`), 'and never the VIP (Sluice ran first)');
  const got = back.seen();
  t.ok(got.has(`${VIP}>${CLIENT}`), 'coming back, it sees the VIP (Sluice reverse-translated first)', { seen: [...got.keys()] });
  t.notOk(got.has(`${POD_IP['web-a']}>${CLIENT}`), 'and never the backend address');
  t.ok(webC.seen().has(`${CLIENT}>${POD_IP['web-c']}`), 'at the backend\'s veth the neighbour sees client -> backend');
}

t.test('a foreign priority-1 TC program beside Sluice, in both attach orders', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [service('web', VIP, PORTS), slice('web-1', 'web', ['web-a', 'web-b', 'web-c'], PORTS)]);
  const hooks: HookSpec[] = [
    { pod: bed.tcClient, direction: 'ingress', drop: POD_IP['web-b'] },
    { pod: bed.tcClient, direction: 'egress' },
    { pod: bed.web['web-c'], direction: 'egress', drop: POD_IP['web-c'] },
  ];

  await t.test('foreign program attached first, Sluice after it', async (t) => {
    const neighbours = await attachAll(bed, hooks);
    t.same(await order(bed, hooks), ['foreign', 'foreign', 'foreign'], 'the neighbours alone');
    const agent = bed.startAgent();
    await bed.waitForSynced(90_000);
    await bed.waitFor('Sluice at the head of every hook', async () => (await order(bed, hooks)).every((o) => o === 'sluice,foreign'));
    await checkTraffic(t, bed, neighbours);

    await agent.kill('SIGTERM');
    const r = await bed.runCleanupCommand();
    t.equal(r.code, 0, 'sluice-agent cleanup succeeds', { stderr: r.stderr });
    t.same(await order(bed, hooks), ['foreign', 'foreign', 'foreign'], 'cleanup removed Sluice\'s filters and left the neighbours\' in place');
    for (const n of neighbours) await n.detach();
  });

  await t.test('foreign program attached after Sluice: the periodic check puts Sluice back in front', async (t) => {
    const agent = bed.startAgent();
    await bed.waitForSynced(90_000);
    await bed.waitFor('Sluice attached to every hook', async () => (await order(bed, hooks)).every((o) => o === 'sluice'));
    const from = agent.logs.length;
    const neighbours = await attachAll(bed, hooks);
    const right = await order(bed, hooks);
    t.ok(right.every((o) => o.startsWith('foreign,sluice')) || right.every((o) => o === 'sluice,foreign'),
      'the neighbours went in at the head of the hooks (or Sluice was already back)', { order: right });
    await bed.waitFor('Sluice back at the head of every hook', async () => (await order(bed, hooks)).every((o) => o === 'sluice,foreign'), 20_000);
    const repaired = await agent.waitForLog((l) => l.msg === 'programs were detached behind our back: re-attached', 'the repair', 5000, from);
    t.ok((repaired.repaired as string[]).length >= 3, 'the agent logged putting itself back in front', { repaired: repaired.repaired });
    t.same(await order(bed, hooks), ['sluice,foreign', 'sluice,foreign', 'sluice,foreign'], 'one Sluice filter per hook (the old one was removed after the new one went in)');
    await checkTraffic(t, bed, neighbours);
    const status = await bed.status();
    t.ok(status.programs.filter((p) => p.hook === 'tc').every((p) => p.attached), 'status: every TC attachment in place again', { programs: status.programs });

    await agent.kill('SIGTERM');
    const r = await bed.runCleanupCommand();
    t.equal(r.code, 0, 'sluice-agent cleanup succeeds');
    t.same(await order(bed, hooks), ['foreign', 'foreign', 'foreign'], 'cleanup left the neighbours alone');
  });
});
