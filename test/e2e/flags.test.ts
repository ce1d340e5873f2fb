// Issue 4, end to end: the real sluice-agent binary refuses bad flags and environment values
// with a message naming the flag (or variable) and the value, exit code 2, and nothing touched;
// and `sluice-agent cleanup` removes everything a running agent attached and pinned.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { run as runCommand } from '../../src/testbed/exec.js';
import type { RunResult } from '../../src/testbed/exec.js';
import { addVethPair, runInNetns } from '../../src/testbed/netns.js';
import type { AgentBed } from './agent-bed.js';
import { createAgentBed, expectNotAnswered, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';

const VIP = '10.96.0.50';
const HTTP = [{ name: 'http', port: 80 }];

/** Programs attached to `cgroup` (bpftool's view of the kernel). */
async function cgroupPrograms(cgroup: string): Promise<string[]> {
  const r = await runCommand(['bpftool', '-j', 'cgroup', 'show', cgroup]);
  return (JSON.parse(r.stdout.trim() || '[]') as { name?: string; attach_type?: string }[]).map((p) => `${p.attach_type}:${p.name}`).sort();
}

/** `tc filter show dev IF DIR` lines for every host veth of the run, inside the node namespace. */
async function tcFilters(bed: AgentBed): Promise<string[]> {
  const found: string[] = [];
  for (const pod of bed.topo.pods) {
    for (const dir of ['ingress', 'egress']) {
      const r = await runInNetns(bed.topo.nodeNs, ['tc', 'filter', 'show', 'dev', pod.hostIfname, dir]);
      // One line per filter carries the program: `... handle 0x.. sl_tc_from_pod:[id] direct-action ... name sl_tc_from_pod ...`.
      for (const line of r.stdout.split('\n').filter((l) => / handle /.test(l))) found.push(`${pod.hostIfname} ${dir}: ${line.trim()}`);
    }
  }
  return found;
}

const pins = (dir: string) => (existsSync(dir) ? readdirSync(dir, { recursive: true }).map(String).sort() : []);

t.test('bad flags and environment: named, exit 2, nothing attached', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  // Each case: the bed's complete, valid flag set plus one bad flag (or a bad variable), so a
  // validation gap would show up as an agent that starts — inside the sandbox only.
  const missing = `${bed.work}/missing`;
  const cases: { what: string; args?: string[]; env?: Record<string, string>; drop?: string; names: string[] }[] = [
    { what: 'connect-time mode', args: ['--connect-time-lb', 'sometimes'], names: ['--connect-time-lb', '"sometimes"', 'tcp, tcp-udp, disabled'] },
    { what: 'duration', args: ['--min-sync-period', '5x'], names: ['--min-sync-period', '"5x"'] },
    { what: 'metrics address', args: ['--metrics-address', 'localhost'], names: ['--metrics-address', '"localhost"'] },
    { what: 'interface glob', args: ['--interfaces', 'veth/0'], names: ['--interfaces', '"veth/0"'] },
    { what: 'CIDR', args: ['--node-port-addresses', '10.0.0.0/33'], names: ['--node-port-addresses', '"10.0.0.0/33"'] },
    { what: 'log level (= form)', args: ['--log-level=chatty'], names: ['--log-level', '"chatty"'] },
    { what: 'missing value', args: ['--pin-dir'], names: ['--pin-dir', 'needs a value'] },
    { what: 'unknown flag', args: ['--frobnicate', 'yes'], names: ['unknown flag', '"--frobnicate"', '--help'] },
    { what: 'environment variable', env: { SLUICE_CONNECT_TIME_LB: 'always' }, names: ['SLUICE_CONNECT_TIME_LB', '"always"'] },
    { what: 'environment log level', env: { SLUICE_LOG_LEVEL: 'loud' }, drop: '--log-level', names: ['SLUICE_LOG_LEVEL', '"loud"'] },
    // Well-formed values naming what is not there: refused before any map is pinned.
    { what: 'missing cgroup', args: ['--cgroup', missing], names: ['--cgroup', `"${missing}"`, 'does not exist'] },
    { what: 'cgroup that is no cgroup', args: ['--cgroup', bed.work], names: ['--cgroup', `"${bed.work}"`, 'not a cgroup v2 directory'] },
    { what: 'missing kubeconfig', args: ['--kubeconfig', missing], drop: '--manifests', names: ['--kubeconfig', `"${missing}"`, 'does not exist'] },
  ];
  const runCase = (c: (typeof cases)[number]): Promise<RunResult> => {
    // `drop` removes a flag of the bed's set (a flag wins over its variable; --manifests wins
    // over --kubeconfig). A repeated flag: the last one counts.
    const flags = bed.agentFlags().filter((f, i, all) => c.drop === undefined || (f !== c.drop && all[i - 1] !== c.drop));
    return runCommand(bed.agentArgv([...flags, ...(c.args ?? [])]), { allowFailure: true, timeoutMs: 60_000, env: { SLUICE_LOG_LEVEL: '', ...c.env } });
  };
  const results: RunResult[] = [];
  for (let i = 0; i < cases.length; i += 4) results.push(...await Promise.all(cases.slice(i, i + 4).map(runCase))); // 4 at a time

  for (const [i, c] of cases.entries()) {
    const r = results[i]!;
    t.equal(r.code, 2, `${c.what}: exit code 2`, { stderr: r.stderr, stdout: r.stdout });
    const line = r.stderr.trim();
    t.equal(line.split('\n').length, 1, `${c.what}: one line on stderr`, { stderr: r.stderr });
    t.ok(line.startsWith('sluice-agent: '), `${c.what}: says who speaks`, { stderr: line });
    for (const n of c.names) t.ok(line.includes(n), `${c.what}: names ${n}`, { stderr: line });
    t.equal(r.stdout, '', `${c.what}: nothing on stdout (no agent log started)`);
  }
  // Well-formed flags, unusable credentials: the kubeconfig exists but is not one. The agent
  // fails before it pins or attaches anything.
  const badKube = `${bed.work}/bad-kubeconfig`;
  writeFileSync(badKube, 'clusters: [this is not a kubeconfig\n');
  const kube = await runCase({ what: 'malformed kubeconfig', args: ['--kubeconfig', badKube], drop: '--manifests', names: [] });
  t.not(kube.code, 0, 'a malformed kubeconfig: the agent exits non-zero', { stderr: kube.stderr, stdout: kube.stdout });
  t.match(kube.stdout + kube.stderr, /kubeconfig|YAML|yaml/, 'and says why', { stdout: kube.stdout, stderr: kube.stderr });
  t.notOk(existsSync(bed.pinDir), 'no pin directory was created');
  t.same(await cgroupPrograms(bed.clientCgroup), [], 'no program on the test cgroup (bpftool cgroup show)');
  t.same(await tcFilters(bed), [], 'no TC filter on any veth of the run');
  t.notOk(existsSync(bed.socket), 'no admin socket');

  // --help is not an error: usage on stdout, exit 0, every flag with its variable.
  const help = await runCommand(bed.agentArgv(['--help']), { allowFailure: true });
  t.equal(help.code, 0, '--help exits 0');
  t.match(help.stdout, /Usage: sluice-agent/, '--help prints the usage');
  t.match(help.stdout, /--connect-time-lb .*\[\$SLUICE_CONNECT_TIME_LB\]/, '--help names each flag with its environment variable');
});

t.test('cleanup removes everything a running agent attached', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [service('web', VIP, HTTP), slice('web-1', 'web', ['web-a'], HTTP)]);
  const agent = bed.startAgent();
  await bed.waitForBackends(portKey('web', 'http'), ['web-a'], 80);

  const programs = await cgroupPrograms(bed.clientCgroup);
  t.same(programs.map((p) => p.split(':')[1]).sort(), [
    'sl_connect4', 'sl_connect6', 'sl_getpeername4', 'sl_getpeername6', 'sl_recvmsg4', 'sl_recvmsg6', 'sl_sendmsg4', 'sl_sendmsg6',
  ], 'the agent attached the eight connect-time programs (both families) to the test cgroup', { programs });
  const filters = await tcFilters(bed);
  t.equal(filters.length, bed.topo.pods.length * 2, 'and a TC filter on each direction of each of the run\'s veths', { filters });
  t.ok(filters.every((f) => /ingress: .*name sl_tc_from_pod|egress: .*name sl_tc_to_pod/.test(f)), 'Sluice\'s programs, the right one per direction', { filters });
  t.ok(pins(bed.pinDir).some((p) => p.startsWith('sl_')), 'and pinned its maps', { pins: pins(bed.pinDir) });

  // Interfaces that appear later (a new pod's veth) get the TC programs too, found by the link
  // monitor; one not matching --interfaces is left alone. Both are removed again afterwards.
  const late = `veth${bed.run.prefix}z9`;
  const other = `oth${bed.run.prefix}z9`;
  await addVethPair({ ns: bed.topo.nodeNs, name: late, peerNs: bed.topo.nodeNs, peerName: `${late}p` });
  await addVethPair({ ns: bed.topo.nodeNs, name: other, peerNs: bed.topo.nodeNs, peerName: `${other}p` });
  const filtersOf = async (dev: string) => (await runInNetns(bed.topo.nodeNs, ['tc', 'filter', 'show', 'dev', dev, 'ingress'], { allowFailure: true })).stdout;
  await bed.waitFor(`TC programs on ${late}, created after the agent started`, async () => /sl_tc_from_pod/.test(await filtersOf(late)), 10_000);
  t.pass(`a veth created after start (${late}) got sl_tc_from_pod`);
  t.notMatch(await filtersOf(other), /sl_tc_/, `a non-matching interface (${other}) got nothing`);
  await runInNetns(bed.topo.nodeNs, ['ip', 'link', 'del', late]);
  await runInNetns(bed.topo.nodeNs, ['ip', 'link', 'del', other]);
  await agent.waitForLog((l) => l.msg === 'workload interface gone' && l.iface === late, `the agent noticing ${late} went`, 10_000);

  // A clean stop leaves the dataplane attached and serving (that is the design).
  await agent.kill('SIGTERM');
  t.equal((await agent.exited).code, 0, 'the agent stops cleanly on SIGTERM');
  t.equal((await cgroupPrograms(bed.clientCgroup)).length, 8, 'programs stay attached after the agent stops');
  expectServed(t, await bed.traffic('connect-time', VIP, 80, 2), ['web-a'], 'connect-time with the agent stopped');
  expectServed(t, await bed.traffic('tc', VIP, 80, 2), ['web-a'], 'TC path with the agent stopped');

  const r = await bed.runCleanupCommand();
  t.equal(r.code, 0, 'sluice-agent cleanup exits 0', { stderr: r.stderr, stdout: r.stdout });
  const report = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => /removed/.test(String(l.msg)));
  t.match(report, { linksDetached: 8, tcFiltersRemoved: bed.topo.pods.length * 2, problems: [] }, 'and reports what it removed', { stdout: r.stdout });
  t.same(await cgroupPrograms(bed.clientCgroup), [], 'no program left on the test cgroup (bpftool cgroup show)');
  t.same(await tcFilters(bed), [], 'no TC filter left on any veth (tc filter show, in the node namespace)');
  t.same(pins(bed.pinDir), [], 'no pin left', { pins: pins(bed.pinDir) });
  t.notOk(existsSync(bed.pinDir), 'the pin directory is gone');
  expectNotAnswered(t, await bed.traffic('connect-time', VIP, 80, 1, 'tcp', 500), 'connect-time after cleanup');
  expectNotAnswered(t, await bed.traffic('tc', VIP, 80, 1, 'tcp', 500), 'TC path after cleanup');

  const again = await bed.runCleanupCommand();
  t.equal(again.code, 0, 'cleanup again (nothing there) still exits 0', { stderr: again.stderr });
});
