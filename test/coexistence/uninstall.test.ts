// Issue 13 §6: after `sluice-agent cleanup` nothing of Sluice is attached — no cgroup link on
// the node's cgroup, no Sluice TC filter on any interface of the node, no pins — a foreign
// filter on the same hooks is untouched, and kube-proxy-shaped rules serve the service again
// (from a client balanced at connect time before, and from one translated on its veth before).
// Without a usable iproute2 `tc` (Sluice reads its TC filters back with it), the cleanup and the
// agent refuse to start, say why, and touch nothing.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { isSluiceFilter } from '../../src/datapath/attach.js';
import { interfaceNames, listTcFilters } from '../../src/datapath/tc-filters.js';
import { computeDesiredState } from '../../src/model/desired-state.js';
import type { ModelInput } from '../../src/model/types.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { chainPackets, iptablesRestore } from '../../src/testbed/iptables.js';
import { kubeProxyRules } from '../../src/testbed/kube-proxy-rules.js';
import { netnsPath } from '../../src/testbed/netns.js';
import { createAgentBed, expectServed, NODE_NAME, nodeObject, portKey, service, slice, summarize } from '../e2e/agent-bed.js';
import { attachNeighbour } from './policy-neighbour.js';

const VIP = '10.96.0.76';
const PORTS = [{ name: 'http', port: 80 }];

/**
 * A PATH directory holding every command of this PATH except tc (the test bed's netns wrapper
 * needs nsenter, sh, mount...), plus `fakeTc` as tc when given.
 */
function pathWithoutTc(dir: string, fakeTc?: string): string {
  mkdirSync(dir, { recursive: true });
  const seen = new Set(['tc']);
  for (const from of (process.env.PATH ?? '').split(delimiter).filter((d) => d && existsSync(d))) {
    for (const name of readdirSync(from)) {
      if (seen.has(name)) continue;
      seen.add(name);
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  if (fakeTc) {
    writeFileSync(join(dir, 'tc'), fakeTc);
    chmodSync(join(dir, 'tc'), 0o755);
  }
  return dir;
}

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

  // No tc on PATH: the cleanup could not find Sluice's filters, so it refuses before emptying
  // or detaching anything (the dataplane keeps serving, the operator reads why).
  const noTc = pathWithoutTc(join(bed.work, 'path-no-tc'));
  const refused = await runCommand(bed.agentArgv(['cleanup', '--pin-dir', bed.pinDir, '--cgroup', bed.clientCgroup, '--interfaces', bed.ifacePattern]), {
    allowFailure: true, timeoutMs: 60_000, env: { PATH: noTc },
  });
  t.equal(refused.code, 1, 'cleanup without tc exits 1', { stdout: refused.stdout.slice(-2000), stderr: refused.stderr.slice(-2000) });
  const said = refused.stdout + refused.stderr;
  t.match(said, /the tc binary \(iproute2\) is not usable: tc cannot be run \(ENOENT/, 'it names the binary and why it failed');
  t.match(said, /Sluice reads its TC filters back with it/, 'and what it is needed for');
  t.equal(cgroupPrograms(bed.clientCgroup).length, 8, 'nothing detached');
  t.ok(existsSync(bed.pinDir), 'nothing unpinned');
  const served = await bed.bothPaths(VIP, 80, 4, 3000);
  t.equal(summarize([...served['connect-time'], ...served.tc]).failed, 0, 'and Sluice still serves both paths');

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

  // The agent without tc (missing, or one that cannot list filters as JSON, like an old
  // iproute2): it refuses to start, naming the binary, before pinning or attaching anything.
  const brokenTc = pathWithoutTc(join(bed.work, 'path-broken-tc'), '#!/bin/sh\necho \'Option "-j" is unknown, try "tc -help".\' >&2\nexit 255\n');
  for (const [what, PATH, cause] of [['no tc on PATH', noTc, /tc cannot be run \(ENOENT/], ['a tc without JSON output', brokenTc, /failed \(Option \\?"-j\\?" is unknown/]] as const) {
    const started = await runCommand(bed.agentArgv(bed.agentFlags()), { allowFailure: true, timeoutMs: 90_000, env: { PATH, SLUICE_LOG_LEVEL: '' } });
    const out = started.stdout + started.stderr;
    t.equal(started.code, 1, `${what}: the agent refuses to start (exit 1)`, { out: out.slice(-2000) });
    t.match(out, /the tc binary \(iproute2\) is not usable/, `${what}: it names the binary`);
    t.match(out, cause, `${what}: and the cause`);
    t.match(out, /install iproute2/, `${what}: and the remedy`);
    t.notOk(existsSync(bed.pinDir), `${what}: nothing pinned`);
    t.same(cgroupPrograms(bed.clientCgroup), [], `${what}: nothing attached`);
  }
});
