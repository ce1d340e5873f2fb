// The kernel matrix's check, run inside a VM booted on one of Debian's kernels
// (scripts/kernel-matrix/, docs/kernels.md): as PID 1's only job it
//   1. loads every object on its own (the agent's loader; a rejection keeps the verifier's verdict),
//   2. runs libbpf's probes,
//   3. runs the real sluice-agent in standalone mode on a manifest directory, in a node network
//      namespace with a client pod (in a cgroup: connect-time path; outside it: TC path) and two
//      web pods (dual stack), and sends ClusterIP traffic through both paths, in IPv4 and (at the
//      same time, so the run grows by seconds) to an IPv6 ClusterIP, and to a service without
//      endpoints,
//   4. reads `sluicectl status` (JSON and text),
// and prints one line `SLUICE-MATRIX-RESULT <json>` on the console for test/boot/kernel-matrix.test.ts.
// It never decides pass or fail: the test does, per kernel.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBpfObject } from '../../bpf/loader.js';
import { EXTERNAL_MODE } from '../../bpf/sluice-structs.js';
import { fromPackageRoot, loadNative } from '../../bpf/native.js';
import { loadErrorSummary, probeKernel } from '../../datapath/kernel-features.js';
import type { KernelProbes } from '../../datapath/kernel-features.js';
import { adminRequest } from '../../admin/client.js';
import type { StatusView } from '../../admin/types.js';
import { createCgroup } from '../cgroup.js';
import { runEchoClient, startEchoServer } from '../echo.js';
import type { EchoAttempt } from '../echo.js';
import { run as runCommand } from '../exec.js';
import { netnsArgv } from '../netns.js';
import { killAndWait, TestbedRun } from '../run.js';
import { createTopology } from '../topology.js';

export const RESULT_MARK = 'SLUICE-MATRIX-RESULT ';
export const OBJECTS = ['tc.bpf.o', 'connect.bpf.o', 'host.bpf.o', 'sockdestroy.bpf.o'] as const;
/** The result key of host.bpf.o loaded with --external-mode DSR. */
export const HOST_DSR = 'host.bpf.o (DSR mode)';
export const VIP = '10.96.0.10';
export const VIP_NO_ENDPOINTS = '10.96.0.20';
/** An IPv6-only Service over the same web pods. */
export const VIP6 = 'fd00:96::10';

export interface AttemptSummary {
  ok: number;
  failed: number;
  /** Pods that answered. */
  pods: string[];
  /** Error codes seen (ECONNREFUSED, EPERM, ETIMEDOUT...). */
  codes: string[];
  /** Whether every answering pod saw the client's own address of the VIP's family (no SNAT). */
  clientIpKept: boolean;
}

export interface GuestResult {
  release: string;
  objects: Record<string, { loaded: boolean; error?: string }>;
  probes: KernelProbes | { error: string };
  agent: {
    synced: boolean;
    error?: string;
    connectTime?: AttemptSummary;
    tc?: AttemptSummary;
    /** The same to the IPv6 ClusterIP (VIP6). */
    connectTime6?: AttemptSummary;
    tc6?: AttemptSummary;
    noEndpointsConnectTime?: AttemptSummary;
    noEndpointsTc?: AttemptSummary;
    kernel?: StatusView['kernel'];
    statusText?: string;
    /** The agent's warn/error log lines (kernel feature report, rejected objects). */
    logs: string[];
    /**
     * The agent killed and started again with the same flags (docs/upgrades.md#restarts): per
     * object, whether each start reused the previous start's programs, and whether every
     * attachment runs the same program id after the restart.
     */
    restart?: { first: Record<string, boolean>; second: Record<string, boolean>; notReused: string[]; sameProgramIds: boolean };
  };
  durationMs: number;
  /** Milliseconds each step took (objects, probes, bed, sync, traffic), for the CI log: where a slow run spends its time. */
  stepsMs?: Record<string, number>;
}

const AGENT_JS = fromPackageRoot('dist', 'src', 'cli', 'agent.js');
const SLUICECTL_JS = fromPackageRoot('dist', 'src', 'cli', 'sluicectl.js');
const CLIENT_IP = '10.244.0.10';
/** createTopology's IPv6 address of the first pod (the client). */
const CLIENT_IP6 = 'fd00:10:244::a';
/** Under TCG (and a loaded host) a node process takes seconds to start: waits are generous. */
const SLOW_MS = 120_000;

function summarize(attempts: EchoAttempt[], clientIp = CLIENT_IP): AttemptSummary {
  const okOnes = attempts.filter((a) => a.ok);
  return {
    ok: okOnes.length,
    failed: attempts.length - okOnes.length,
    pods: [...new Set(okOnes.map((a) => a.pod ?? '?'))].sort(),
    codes: [...new Set(attempts.filter((a) => !a.ok).map((a) => a.error?.code ?? '?'))].sort(),
    clientIpKept: okOnes.every((a) => a.seenPeer?.address === clientIp),
  };
}

/** Loads each object on its own, over a scratch pin directory of a test bed run, and keeps the verdict. */
async function loadEachObject(): Promise<GuestResult['objects']> {
  const native = loadNative();
  const out: GuestResult['objects'] = {};
  const run = await TestbedRun.start();
  try {
    for (const name of OBJECTS) out[name] = await loadOne(native, join(await run.pinDir(), name.replace(/\W/g, '_')), name);
    // host.bpf.o again in DSR mode: the Tunnel and DSR branches (IPv6 tunnel steps in
    // sl_host6_ingr) are dead code to the verifier in SNAT mode, the mode above.
    out[HOST_DSR] = await loadOne(native, join(await run.pinDir(), 'host_dsr'), 'host.bpf.o', { sl_external_mode: EXTERNAL_MODE.DSR });
  } finally {
    await run.destroy();
  }
  return out;
}

async function loadOne(native: ReturnType<typeof loadNative>, dir: string, name: string, rodata?: Record<string, number>): Promise<GuestResult['objects'][string]> {
  await mkdir(dir, { recursive: true });
  try {
    const obj = await openBpfObject(fromPackageRoot('dist', 'bpf', name), { pinRoot: dir, addon: native, ...(rodata ? { rodata } : {}) });
    obj.close();
    return { loaded: true };
  } catch (err) {
    return { loaded: false, error: loadErrorSummary(err) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function manifests(): string {
  const slice = (svc: string, ips: string[], family = 'IPv4') => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${svc}-1, namespace: matrix, labels: { kubernetes.io/service-name: ${svc} } }
addressType: ${family}
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${ips.map((ip, i) => `  - { addresses: ["${ip}"], conditions: { ready: true, serving: true, terminating: false }, nodeName: matrix-node, targetRef: { kind: Pod, namespace: matrix, name: web-${'ab'[i]} } }`).join('\n') || '  []'}
`;
  const service = (name: string, ip: string, family = 'IPv4') => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: matrix }
spec: { type: ClusterIP, clusterIP: "${ip}", clusterIPs: ["${ip}"], ipFamilies: [${family}], ports: [{ name: http, port: 80, targetPort: 8080, protocol: TCP }] }
`;
  return [
    `apiVersion: v1
kind: Node
metadata: { name: matrix-node }
status: { addresses: [{ type: InternalIP, address: 192.0.2.1 }] }
`,
    service('echo', VIP), slice('echo', ['10.244.0.11', '10.244.0.12']),
    service('empty', VIP_NO_ENDPOINTS),
    service('echo6', VIP6, 'IPv6'), slice('echo6', ['fd00:10:244::b', 'fd00:10:244::c'], 'IPv6'),
  ].join('---\n');
}

async function waitForSync(socket: string, exited: () => boolean, timeoutMs: number): Promise<StatusView> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited()) throw new Error('sluice-agent exited before it synced');
    // The admin API in-process (what sluicectl asks): a node process per poll is seconds under TCG.
    const status = await adminRequest<StatusView>({ socketPath: socket, method: 'GET', path: '/v1/status', timeoutMs: 20_000 }).catch(() => null);
    if (status?.sync.state === 'synced') return status;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`sluice-agent did not sync within ${timeoutMs} ms`);
}

/** Records how long each step took, from the previous mark on. */
function stepClock(result: GuestResult): (step: string) => void {
  let last = Date.now();
  result.stepsMs ??= {};
  return (step) => {
    const now = Date.now();
    result.stepsMs![step] = now - last;
    last = now;
  };
}

async function agentScenario(result: GuestResult): Promise<void> {
  const step = stepClock(result);
  const run = await TestbedRun.start();
  const logs = result.agent.logs;
  const recent: string[] = [];
  try {
    const topo = await createTopology(run, { pods: ['client', 'web-a', 'web-b'], ipv6: true });
    const [client, webA, webB] = topo.pods;
    if (!client || !webA || !webB) throw new Error('topology is missing pods');
    const cgroup = await createCgroup(await run.cgroup(), 'pods');
    const pinDir = join(await run.pinDir(), 'sluice');
    const work = await mkdtemp(join(tmpdir(), 'sluice-matrix-'));
    run.cleanup.add('work dir', () => rm(work, { recursive: true, force: true }));
    await mkdir(join(work, 'manifests'));
    await writeFile(join(work, 'manifests', 'matrix.yaml'), manifests());
    for (const pod of [webA, webB]) await startEchoServer(run, { name: pod.name, ns: pod.ns, host: ['0.0.0.0', '::'], tcp: [8080], readyTimeoutMs: SLOW_MS });
    const socket = join(work, 'admin.sock');
    const [cmd, ...args] = netnsArgv(topo.nodeNs, [
      process.execPath, AGENT_JS, '--node-name', 'matrix-node', '--manifests', join(work, 'manifests'), '--pin-dir', pinDir,
      '--cgroup', cgroup, '--interfaces', `veth${run.prefix}*`, '--admin-socket', socket, '--metrics-address', 'off', '--log-level', 'info',
    ]) as [string, ...string[]];
    const keep = (chunk: Buffer) => {
      // Warnings and errors all kept; other lines only the last few (what it was doing when stuck).
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        if (/"level":(40|50|60)/.test(line) || !line.startsWith('{')) logs.push(line.slice(0, 2000));
        else recent.push(line.slice(0, 500));
        if (recent.length > 10) recent.shift();
      }
    };
    const startAgent = () => {
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let exited = false;
      child.once('exit', () => { exited = true; });
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      run.cleanup.add('sluice-agent', () => killAndWait(child));
      return { child, exited: () => exited };
    };
    const agent = startAgent();
    step('bed');
    const status = await waitForSync(socket, agent.exited, 5 * 60_000);
    step('agentSync');
    result.agent.synced = true;
    result.agent.kernel = status.kernel;
    result.agent.statusText = (await runCommand([process.execPath, SLUICECTL_JS, '--socket', socket, 'status'], { timeoutMs: SLOW_MS })).stdout;
    step('sluicectlStatus');
    const echo = (host: string, inCgroup: boolean, count: number) =>
      runEchoClient({ ns: client.ns, ...(inCgroup ? { cgroup } : {}), proto: 'tcp', host, port: 80, count, timeoutMs: 3000, startupMs: SLOW_MS });
    // Each family's client at once: under TCG most of an attempt is the node process starting,
    // and the VM has two CPUs.
    const [v4, v6] = await Promise.all([echo(VIP, true, 4), echo(VIP6, true, 2)]);
    result.agent.connectTime = summarize(v4);
    result.agent.connectTime6 = summarize(v6, CLIENT_IP6);
    const [tc4, tc6] = await Promise.all([echo(VIP, false, 4), echo(VIP6, false, 2)]);
    result.agent.tc = summarize(tc4);
    result.agent.tc6 = summarize(tc6, CLIENT_IP6);
    step('clusterIpTraffic');
    result.agent.noEndpointsConnectTime = summarize(await echo(VIP_NO_ENDPOINTS, true, 1));
    result.agent.noEndpointsTc = summarize(await echo(VIP_NO_ENDPOINTS, false, 1));
    step('noEndpointsTraffic');
    // The same agent again on its pins: the programs of the first start are reused, not loaded.
    await killAndWait(agent.child);
    const again = await waitForSync(socket, startAgent().exited, 5 * 60_000);
    const reusedOf = (s: StatusView) => Object.fromEntries((s.objects ?? []).map((o) => [o.object, o.reused]));
    const progIds = (s: StatusView) => JSON.stringify(s.programs.map((p) => [p.program, p.target, p.direction, p.progId]).sort());
    result.agent.restart = {
      first: reusedOf(status), second: reusedOf(again), sameProgramIds: progIds(again) === progIds(status),
      notReused: (again.objects ?? []).filter((o) => !o.reused).map((o) => `${o.object}: ${o.notReused}`),
    };
    step('restart');
  } catch (err) {
    result.agent.error = (err as Error).message;
    logs.push(...recent);
  } finally {
    await run.destroy();
  }
}

export async function runGuestCheck(): Promise<GuestResult> {
  const start = Date.now();
  const result: GuestResult = { release: release(), objects: {}, probes: { error: 'not run' }, agent: { synced: false, logs: [] }, durationMs: 0 };
  const step = stepClock(result);
  result.objects = await loadEachObject();
  step('objects');
  try {
    result.probes = probeKernel(loadNative());
  } catch (err) {
    result.probes = { error: (err as Error).message };
  }
  step('probes');
  await agentScenario(result);
  result.durationMs = Date.now() - start;
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runGuestCheck().then(
    (r) => process.stdout.write(`\n${RESULT_MARK}${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stdout.write(`\n${RESULT_MARK}${JSON.stringify({ release: release(), fatal: (err as Error).stack ?? String(err) })}\n`);
      process.exitCode = 1;
    },
  );
}
