// The kernel matrix's check, run inside a VM booted on one of Debian's kernels
// (scripts/kernel-matrix/, docs/kernels.md): as PID 1's only job it
//   1. runs libbpf's probes,
//   2. runs the real sluice-agent (--external-mode DSR) in standalone mode on a manifest
//      directory, in a node network namespace with a client pod (in a cgroup: connect-time path;
//      outside it: TC path) and two web pods (dual stack); meanwhile it loads host.bpf.o in SNAT
//      mode on its own (the agent's loader; a rejection keeps the verifier's verdict),
//   3. takes the verdicts of the objects the agent loaded (tc, connect, sockdestroy, host.bpf.o in
//      DSR mode) from its status: a feature is on iff its object loaded, and off with the reason.
//      Under TCG a load costs the verifier up to tens of seconds, so none is made twice; only an
//      object the agent gave no verdict for (it did not sync) is loaded on its own afterwards,
//   4. reads `sluicectl status` (JSON and text), sends ClusterIP traffic through both paths, in
//      IPv4 and IPv6 (at the same time), and to a service without endpoints,
//   5. restarts the agent on its pins (its programs reused),
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
import type { FeatureName, KernelProbes } from '../../datapath/kernel-features.js';
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
/** The result key of host.bpf.o loaded with --external-mode DSR. */
export const HOST_DSR = 'host.bpf.o (DSR mode)';
/**
 * Every verdict the result holds, by key: the object file and its mode. host.bpf.o twice: the
 * Tunnel and DSR branches (IPv6 tunnel steps in sl_host6_ingr) are dead code to the verifier in
 * SNAT mode, the SNAT-only ones in DSR mode (which verifies Tunnel's paths too: only the opt-out
 * lookup of a new flow decides between the two).
 */
const OBJECT_LOADS: Record<string, { file: string; rodata?: Record<string, number> }> = {
  'tc.bpf.o': { file: 'tc.bpf.o' },
  'connect.bpf.o': { file: 'connect.bpf.o' },
  'host.bpf.o': { file: 'host.bpf.o' },
  'sockdestroy.bpf.o': { file: 'sockdestroy.bpf.o' },
  [HOST_DSR]: { file: 'host.bpf.o', rodata: { sl_external_mode: EXTERNAL_MODE.DSR } },
};
/**
 * The verdicts the agent gives (its feature of each object it loads, and the object's name in
 * its status); host.bpf.o's only while it runs in DSR mode.
 */
const AGENT_OBJECTS: Record<string, { feature: FeatureName; stem: string; externalMode?: string }> = {
  'tc.bpf.o': { feature: 'tc-datapath', stem: 'tc' },
  'connect.bpf.o': { feature: 'connect-time-lb', stem: 'connect' },
  'sockdestroy.bpf.o': { feature: 'udp-socket-sweep', stem: 'sockdestroy' },
  [HOST_DSR]: { feature: 'external-traffic', stem: 'host', externalMode: 'DSR' },
};
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

export interface ObjectVerdict {
  loaded: boolean;
  /** Why it did not load: libbpf's or the verifier's reason. */
  error?: string;
  by: 'agent' | 'guest';
}

export interface GuestResult {
  release: string;
  /** Per OBJECT_LOADS key: whether it passed the verifier, and who loaded it (the agent or the guest on its own). */
  objects: Record<string, ObjectVerdict>;
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

/** Loads the objects of `keys` (OBJECT_LOADS) each on its own, over a scratch pin directory of a test bed run, and keeps the verdicts. */
async function loadObjects(keys: string[]): Promise<GuestResult['objects']> {
  const out: GuestResult['objects'] = {};
  if (keys.length === 0) return out;
  const native = loadNative();
  const run = await TestbedRun.start();
  try {
    for (const key of keys) {
      const { file, rodata } = OBJECT_LOADS[key]!;
      const dir = join(await run.pinDir(), key.replace(/\W/g, '_'));
      await mkdir(dir, { recursive: true });
      try {
        const obj = await openBpfObject(fromPackageRoot('dist', 'bpf', file), { pinRoot: dir, addon: native, ...(rodata ? { rodata } : {}) });
        obj.close();
        out[key] = { loaded: true, by: 'guest' };
      } catch (err) {
        out[key] = { loaded: false, error: loadErrorSummary(err), by: 'guest' };
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await run.destroy();
  }
  return out;
}

/**
 * The verdicts of the objects the agent's first start loaded, from its status: the object's
 * feature is on iff it loaded (and its programs were loaded, not reused), off with libbpf's or
 * the verifier's reason. An object the agent did not load (feature disabled, another external
 * mode) gets no verdict here.
 */
function agentVerdicts(status: StatusView): GuestResult['objects'] {
  const out: GuestResult['objects'] = {};
  for (const [key, { feature, stem, externalMode }] of Object.entries(AGENT_OBJECTS)) {
    if (externalMode && status.config.externalMode !== externalMode) continue;
    const f = status.kernel?.features.find((x) => x.name === feature);
    const loadedNow = status.objects?.some((o) => o.object === stem && !o.reused);
    if (f?.state === 'on' && loadedNow) out[key] = { loaded: true, by: 'agent' };
    else if (f?.state === 'off') out[key] = { loaded: false, error: f.reason ?? 'off without a reason', by: 'agent' };
  }
  return out;
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
    const socket = join(work, 'admin.sock');
    // DSR mode: the agent's host.bpf.o is the HOST_DSR verdict (the VM has no host interface to
    // attach it to: the load is what counts).
    const [cmd, ...args] = netnsArgv(topo.nodeNs, [
      process.execPath, AGENT_JS, '--node-name', 'matrix-node', '--manifests', join(work, 'manifests'), '--pin-dir', pinDir,
      '--cgroup', cgroup, '--interfaces', `veth${run.prefix}*`, '--admin-socket', socket, '--metrics-address', 'off', '--log-level', 'info',
      '--external-mode', 'DSR',
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
    // The web pods' echo servers start while the agent does (it needs none of them to sync).
    const [status] = await Promise.all([
      waitForSync(socket, agent.exited, 5 * 60_000),
      ...[webA, webB].map((pod) => startEchoServer(run, { name: pod.name, ns: pod.ns, host: ['0.0.0.0', '::'], tcp: [8080], readyTimeoutMs: SLOW_MS })),
    ]);
    step('agentSync');
    result.agent.synced = true;
    result.agent.kernel = status.kernel;
    Object.assign(result.objects, agentVerdicts(status));
    result.agent.statusText = (await runCommand([process.execPath, SLUICECTL_JS, '--socket', socket, 'status'], { timeoutMs: SLOW_MS })).stdout;
    step('sluicectlStatus');
    const echo = (host: string, inCgroup: boolean, count: number) =>
      runEchoClient({ ns: client.ns, ...(inCgroup ? { cgroup } : {}), proto: 'tcp', host, port: 80, count, timeoutMs: 3000, startupMs: SLOW_MS });
    // Two clients at once: under TCG most of an attempt is the node process starting, and the VM
    // has two CPUs. No more: an attempt has 3 s, and with every client at once one TC attempt
    // timed out on a loaded host.
    const [v4, v6] = await Promise.all([echo(VIP, true, 4), echo(VIP6, true, 2)]);
    result.agent.connectTime = summarize(v4);
    result.agent.connectTime6 = summarize(v6, CLIENT_IP6);
    const [tc4, tc6] = await Promise.all([echo(VIP, false, 4), echo(VIP6, false, 2)]);
    result.agent.tc = summarize(tc4);
    result.agent.tc6 = summarize(tc6, CLIENT_IP6);
    step('clusterIpTraffic');
    const [noEndpointsCt, noEndpointsTc] = await Promise.all([echo(VIP_NO_ENDPOINTS, true, 1), echo(VIP_NO_ENDPOINTS, false, 1)]);
    result.agent.noEndpointsConnectTime = summarize(noEndpointsCt);
    result.agent.noEndpointsTc = summarize(noEndpointsTc);
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
  try {
    result.probes = probeKernel(loadNative());
  } catch (err) {
    result.probes = { error: (err as Error).message };
  }
  step('probes');
  // host.bpf.o in SNAT mode, the one load the agent does not make: on its own, while the agent
  // starts (the load runs on a libuv thread; the VM has two CPUs). Its step time overlaps the
  // agent's steps.
  const ownStart = Date.now();
  const own = loadObjects(['host.bpf.o']).then((objects) => {
    result.stepsMs!.objects = Date.now() - ownStart;
    return objects;
  });
  own.catch(() => {}); // awaited below, where a failure is the check's fatal error as before
  await agentScenario(result);
  Object.assign(result.objects, await own);
  // What the agent gave no verdict for (it did not start or sync): each object on its own, as
  // before, so a rejection is still named with its reason.
  const after = stepClock(result);
  const missing = Object.keys(OBJECT_LOADS).filter((key) => !(key in result.objects));
  if (missing.length > 0) {
    Object.assign(result.objects, await loadObjects(missing));
    after('objectsWithoutAgent');
  }
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
