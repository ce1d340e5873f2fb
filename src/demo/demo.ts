// `npm run demo`: Sluice working in a sandbox. Builds a node namespace with three pods (a client
// in a dedicated cgroup, two web pods running echo servers), starts the real sluice-agent inside
// the node namespace on the bundled manifest directory, sends traffic to the Service's ClusterIP
// and prints which pod answered each request and the client address each pod saw — first
// through connect-time load balancing, then through the TC path — then scales the Service down
// by editing its manifest, and removes everything it made. Nothing touches the root cgroup or
// the root network namespace.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPackageRoot } from '../bpf/native.js';
import { createCgroup } from '../testbed/cgroup.js';
import { runEchoClient, startEchoServer } from '../testbed/echo.js';
import type { EchoAttempt } from '../testbed/echo.js';
import { run as runCommand } from '../testbed/exec.js';
import { netnsArgv } from '../testbed/netns.js';
import { killAndWait, TestbedRun } from '../testbed/run.js';
import { createTopology } from '../testbed/topology.js';

const VIP = '10.96.0.10';
const say = (line = '') => process.stdout.write(line + '\n');

function describe(a: EchoAttempt, vip: string, port: number): string {
  if (!a.ok) return `#${a.i + 1} ${a.proto.toUpperCase()} ${vip}:${port} → FAILED ${a.error?.code ?? ''} ${a.error?.message ?? ''}`;
  const seen = a.seenPeer ? `${a.seenPeer.address}:${a.seenPeer.port}` : '?';
  const peer = a.peername ?? a.recvfrom;
  const peerText = peer ? `${a.proto === 'tcp' ? 'getpeername' : 'recvfrom'} says ${peer.address}:${peer.port}` : '';
  return `#${a.i + 1} ${a.proto.toUpperCase()} ${vip}:${port} → answered by ${a.pod}, which saw client ${seen}; ${peerText} (${a.ms.toFixed(1)} ms)`;
}

async function waitForSync(socket: string, agent: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (agent.exitCode !== null) throw new Error(`sluice-agent exited with ${agent.exitCode} before it synced`);
    const res = await runCommand(sluicectl(socket, ['status', '-o', 'json']), { allowFailure: true, timeoutMs: 5000 });
    if (res.code === 0) {
      try {
        const status = JSON.parse(res.stdout) as { sync?: { state?: string; count?: number } };
        if (status.sync?.state === 'synced') return;
      } catch {
        // Not JSON yet: keep waiting.
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`sluice-agent did not sync within ${timeoutMs} ms`);
}

const agentScript = () => fromPackageRoot('dist', 'src', 'cli', 'agent.js');
const sluicectl = (socket: string, args: string[]) => [process.execPath, fromPackageRoot('dist', 'src', 'cli', 'sluicectl.js'), '--socket', socket, ...args];

export async function runDemo(): Promise<void> {
  const run = await TestbedRun.start();
  const uninstall = run.cleanup.handleProcessEvents();
  try {
    say('Sluice demo: a sandboxed node, three pods, one Service, the real agent.');
    const topo = await createTopology(run, { pods: ['client', 'web-a', 'web-b'] });
    const [client, webA, webB] = topo.pods;
    if (!client || !webA || !webB) throw new Error('demo: topology is missing pods');
    const cgroup = await createCgroup(await run.cgroup(), 'pods');
    const pinDir = await run.pinDir();
    const work = await mkdtemp(join(tmpdir(), 'sluice-demo-'));
    run.cleanup.add(`demo dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await cp(fromPackageRoot('src', 'demo', 'manifests'), manifests, { recursive: true });
    const socket = join(work, 'admin.sock');
    say(`  node namespace ${topo.nodeNs}; pods: ${topo.pods.map((p) => `${p.name} ${p.ip}`).join(', ')}`);
    say(`  cgroup for the client pod: ${cgroup}`);

    for (const pod of [webA, webB]) await startEchoServer(run, { name: pod.name, ns: pod.ns, tcp: [8080], udp: [8053] });
    say('  web-a and web-b run echo servers on 8080/TCP and 8053/UDP');

    const agentArgv = [
      process.execPath, agentScript(),
      '--node-name', 'demo-node', '--manifests', manifests, '--pin-dir', pinDir, '--cgroup', cgroup,
      '--interfaces', `veth${run.prefix}*`, '--admin-socket', socket, '--metrics-address', 'off',
      '--log-level', process.env.SLUICE_LOG_LEVEL ?? 'warn',
    ];
    const [cmd, ...args] = netnsArgv(topo.nodeNs, agentArgv) as [string, ...string[]];
    const agent = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    run.cleanup.add('sluice-agent cleanup', async () => {
      await runCommand(netnsArgv(topo.nodeNs, [process.execPath, agentScript(), 'cleanup', '--pin-dir', pinDir, '--cgroup', cgroup, '--interfaces', `veth${run.prefix}*`, '--log-level', 'warn']), { allowFailure: true });
    });
    run.cleanup.add('sluice-agent', () => killAndWait(agent));
    await waitForSync(socket, agent, 30_000);
    say(`  sluice-agent is running in the node namespace and has programmed ${manifests}`);
    say();

    say(`Connect-time load balancing: the client (in the cgroup) calls ${VIP}:80 and ${VIP}:53`);
    for (const a of await runEchoClient({ ns: client.ns, cgroup, proto: 'tcp', host: VIP, port: 80, count: 6 })) say('  ' + describe(a, VIP, 80));
    for (const a of await runEchoClient({ ns: client.ns, cgroup, proto: 'udp', host: VIP, port: 53, count: 2, connected: true })) say('  ' + describe(a, VIP, 53));
    say();
    say('TC path: the same client namespace, but a process outside the cgroup (NAT on the pod veth)');
    for (const a of await runEchoClient({ ns: client.ns, proto: 'tcp', host: VIP, port: 80, count: 4 })) say('  ' + describe(a, VIP, 80));
    say();

    say('sluicectl services:');
    say(indent((await runCommand(sluicectl(socket, ['services']))).stdout));

    say('Scaling down: web-a leaves the EndpointSlice (editing the manifest file)');
    const svcFile = join(manifests, 'echo-service.yaml');
    const text = await readFile(svcFile, 'utf8');
    const scaled = text.replace(/ {2}- addresses: \[10\.244\.0\.11\][\s\S]*?name: web-a \}\n/, '');
    if (scaled === text) throw new Error(`demo: could not find web-a's endpoint in ${svcFile}`);
    await writeFile(svcFile, scaled);
    await waitFor(async () => !(await runCommand(sluicectl(socket, ['services', '-o', 'json']))).stdout.includes('10.244.0.11'), 10_000, 'the agent to drop web-a');
    say('  the agent saw the file change and reprogrammed the service:');
    const after = await runEchoClient({ ns: client.ns, cgroup, proto: 'tcp', host: VIP, port: 80, count: 4 });
    for (const a of after) say('  ' + describe(a, VIP, 80));
    say();
    const failures = after.filter((a) => !a.ok || a.pod !== 'web-b').length;
    if (failures > 0) throw new Error(`demo: ${failures} request(s) after scale-down did not reach web-b`);
  } finally {
    say('Cleaning up: agent stopped, programs detached, pins, namespaces and cgroup removed.');
    await run.destroy();
    uninstall();
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function indent(text: string): string {
  return text.trimEnd().split('\n').map((l) => '  ' + l).join('\n') + '\n';
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runDemo().then(
    () => say('Demo finished.'),
    (err: unknown) => {
      process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
