// The end-to-end bed: the real sluice-agent (compiled dist/src/cli/agent.js) in a sandboxed node,
// fed by a fake API server or a manifest directory, carrying real traffic between namespaces.
//
//   client (10.244.0.10)  web-a (.11)  web-b (.12)  web-c (.13)  client-tc (.14)   pod namespaces;
//        │ eth0              │            │            │            │               webs run echo
//   veth<prefix>p0 … p4 ─────┴────────────┴────────────┴────────────┘               servers on 8080/TCP,
//                                       node namespace: the agent attaches TC here,  8053/UDP
//                                       the fake API server listens on its loopback
//
// Where things run, and why:
// - The agent runs inside the node namespace (its TC programs go on the host veths there), started
//   with netnsArgv (not `ip netns exec`, which hides bpffs and cgroup2). Its stdout (pino JSON
//   lines) is captured for assertions.
// - The fake API server (test/helpers/fake-apiserver.ts) runs as a child process in the SAME node
//   namespace (fake-apiserver-child.ts, driven over stdin/stdout JSON lines): the agent's
//   kubeconfig says 127.0.0.1, which inside the node namespace is that namespace's loopback. The
//   alternatives — a veth from the test's namespace into the node namespace, or the agent in the
//   root namespace — would add a path out of the sandbox or attach TC outside it.
// - Connect-time programs go on a dedicated cgroup (`<run cgroup>/clients`) only; `client` pod
//   processes in it are balanced at connect(). TC-path traffic comes from a process outside that
//   cgroup, translated by the TC programs on its pod's host veth: by default in the same `client`
//   pod; with `tcFrom: 'client-tc'` from a second client pod. Tests mixing many connections of
//   both paths use the second pod, so each path's counters and conntrack entries stay its own.
// - Pins under `<run pin dir>/sluice`, the admin socket in a temp dir, metrics off, interfaces
//   `veth<prefix>*` only. At teardown (also on failure): agents killed, `sluice-agent cleanup`
//   run in the node namespace, then the run removes namespaces, cgroups, pins and the lease.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { fromPackageRoot } from '../../src/bpf/native.js';
import type { ServiceView, ServicesView, StatusView } from '../../src/admin/types.js';
import { createCgroup } from '../../src/testbed/cgroup.js';
import { runEchoClient, startEchoServer } from '../../src/testbed/echo.js';
import type { EchoAttempt } from '../../src/testbed/echo.js';
import { boundToParent, run as runCommand } from '../../src/testbed/exec.js';
import type { RunResult } from '../../src/testbed/exec.js';
import { netnsArgv, spawnInNetns } from '../../src/testbed/netns.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology } from '../../src/testbed/topology.js';
import type { Attachment, Topology } from '../../src/testbed/topology.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { siblingScript } from '../helpers/sibling-script.js';

export const AGENT_JS = fromPackageRoot('dist', 'src', 'cli', 'agent.js');
export const SLUICECTL_JS = fromPackageRoot('dist', 'src', 'cli', 'sluicectl.js');
export const DEMO_JS = fromPackageRoot('dist', 'src', 'demo', 'demo.js');
const BUILT = [
  AGENT_JS, SLUICECTL_JS, DEMO_JS,
  fromPackageRoot('dist', 'bpf', 'connect.bpf.o'), fromPackageRoot('dist', 'bpf', 'tc.bpf.o'),
  fromPackageRoot('build', 'Release', 'sluice_native.node'), fromPackageRoot('build', 'Release', 'sluice_memory.node'),
];
const FAKE_API_CHILD = siblingScript(import.meta.url, 'fake-apiserver-child');

export const NAMESPACE = 'e2e';
export const NODE_NAME = 'e2e-node';
export const WEB_PODS = ['web-a', 'web-b', 'web-c'] as const;
export type WebPod = (typeof WEB_PODS)[number];
/** Pod addresses the test bed hands out in order of the topology's pods. */
export const POD_IP: Record<'client' | WebPod | 'client-tc', string> = {
  client: '10.244.0.10', 'web-a': '10.244.0.11', 'web-b': '10.244.0.12', 'web-c': '10.244.0.13', 'client-tc': '10.244.0.14',
};
/** The pods' IPv6 addresses in a bed with `ipv6: true` (dual-stack pods, docs/testbed.md). */
export const POD_IP6: Record<'client' | WebPod | 'client-tc', string> = {
  client: 'fd00:10:244::a', 'web-a': 'fd00:10:244::b', 'web-b': 'fd00:10:244::c', 'web-c': 'fd00:10:244::d', 'client-tc': 'fd00:10:244::e',
};
export const ECHO_TCP = 8080;
export const ECHO_UDP = 8053;

/**
 * Throws a clear error when the compiled agent, CLI, BPF objects or addon are missing: these
 * tests run the real binaries (CI builds before testing; locally run `npm run build`).
 */
export function assertBuilt(): void {
  const missing = BUILT.filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(`e2e: ${missing.join(', ')} missing: run \`npm run build\` (or \`npm run build:ts\` after TypeScript changes) before the e2e tests`);
  }
}

/** A warning (not a failure) when a source file of the agent is newer than its compiled form. */
export function staleBuildWarning(): string | undefined {
  const stale = ['agent/agent.ts', 'agent/reconciler.ts', 'agent/config.ts', 'agent/datapath.ts', 'cli/agent.ts', 'demo/demo.ts']
    .filter((f) => {
      const src = fromPackageRoot('src', f);
      const out = fromPackageRoot('dist', 'src', f.replace(/\.ts$/, '.js'));
      return existsSync(src) && existsSync(out) && statSync(src).mtimeMs > statSync(out).mtimeMs;
    });
  return stale.length > 0 ? `src/${stale.join(', src/')} newer than dist/: run \`npm run build:ts\` if results look stale` : undefined;
}

// ---- Kubernetes objects ------------------------------------------------------------------

export interface PortSpec {
  name: string;
  port: number;
  protocol?: 'TCP' | 'UDP';
}

export type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<string, unknown>;

export function service(name: string, clusterIP: string, ports: PortSpec[], extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      type: 'ClusterIP',
      clusterIP,
      clusterIPs: [clusterIP],
      ipFamilies: ['IPv4'],
      ports: ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol ?? 'TCP', targetPort: p.protocol === 'UDP' ? ECHO_UDP : ECHO_TCP })),
      ...extra,
    },
  };
}

/**
 * An EndpointSlice of `svc` with the given web pods as ready endpoints on this node; with
 * `family: 'IPv6'` an IPv6 slice holding the pods' IPv6 addresses (a bed with `ipv6: true`).
 */
export function slice(name: string, svc: string, pods: readonly WebPod[], ports: PortSpec[], opts: { labels?: Record<string, string>; family?: 'IPv4' | 'IPv6' } = {}): KubeObject {
  const v6 = opts.family === 'IPv6';
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: NAMESPACE, labels: opts.labels ?? { 'kubernetes.io/service-name': svc } },
    addressType: v6 ? 'IPv6' : 'IPv4',
    ports: ports.map((p) => ({ name: p.name, port: (p.protocol ?? 'TCP') === 'UDP' ? ECHO_UDP : ECHO_TCP, protocol: p.protocol ?? 'TCP' })),
    endpoints: pods.map((pod) => ({
      addresses: [v6 ? POD_IP6[pod] : POD_IP[pod]],
      conditions: { ready: true, serving: true, terminating: false },
      nodeName: NODE_NAME,
      targetRef: { kind: 'Pod', namespace: NAMESPACE, name: pod },
    })),
  };
}

export function nodeObject(): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: NODE_NAME, labels: { 'topology.kubernetes.io/zone': 'e2e-zone' } },
    status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }, { type: 'Hostname', address: NODE_NAME }] },
  };
}

/** The model's key of a service port. */
export const portKey = (name: string, portName: string, protocol = 'TCP', family: 'IPv4' | 'IPv6' = 'IPv4') => `${NAMESPACE}/${name}:${portName}/${protocol}/${family}`;

// ---- the fake API server in the node namespace --------------------------------------------

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** Drives fake-apiserver-child.ts; methods mirror FakeApiServer's controls. */
export class FakeApiControl {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stderr = '';
  private exited: string | undefined;
  kubeconfig = '';
  /** The server's URL, bearer token and (with TLS) CA certificate. */
  url = '';
  token = '';
  ca: string | null = null;

  private constructor(private readonly child: ChildProcess) {
    child.stderr?.on('data', (c: Buffer) => { this.stderr += c.toString(); });
    child.once('exit', (code, sig) => {
      this.exited = `fake API server exited (${code ?? sig})${this.stderr.trim() ? ': ' + this.stderr.trim() : ''}`;
      for (const p of this.pending.values()) p.reject(new Error(this.exited));
      this.pending.clear();
    });
  }

  /** `host`: listen there instead of 127.0.0.1 (an address of `ns`); `tls`: serve HTTPS. */
  static async start(run: TestbedRun, ns: string, opts: { host?: string; tls?: boolean } = {}): Promise<FakeApiControl> {
    const env = { ...process.env, SLUICE_FAKE_API_HOST: opts.host ?? '', SLUICE_FAKE_API_TLS: opts.tls ? '1' : '' };
    const child = spawnInNetns(ns, nodeArgv(FAKE_API_CHILD), { stdio: ['pipe', 'pipe', 'pipe'], env });
    const api = new FakeApiControl(child);
    // Graceful first (the child removes its kubeconfig directory), then SIGKILL.
    run.cleanup.add('fake API server', async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    });
    type Ready = { kubeconfig: string; url: string; token: string; ca: string | null };
    const ready = await new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fake API server not ready in 20 s${api.stderr ? ': ' + api.stderr : ''}`)), 20_000);
      let first = true;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let msg: { ready?: boolean; kubeconfig?: string; url?: string; token?: string; ca?: string | null; id?: number; result?: unknown; error?: string };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (first && msg.ready) {
          first = false;
          clearTimeout(timer);
          resolve({ kubeconfig: msg.kubeconfig ?? '', url: msg.url ?? '', token: msg.token ?? '', ca: msg.ca ?? null });
          return;
        }
        const p = api.pending.get(msg.id ?? -1);
        if (!p) return;
        api.pending.delete(msg.id ?? -1);
        if (msg.error !== undefined) p.reject(new Error(`fake API server: ${msg.error}`));
        else p.resolve(msg.result);
      });
      child.once('exit', () => {
        clearTimeout(timer);
        reject(new Error(api.exited));
      });
    });
    api.kubeconfig = ready.kubeconfig;
    api.url = ready.url;
    api.token = ready.token;
    api.ca = ready.ca;
    return api;
  }

  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(JSON.stringify({ id, method, args }) + '\n');
    });
  }

  apply(obj: KubeObject): Promise<unknown> {
    return this.call('apply', obj);
  }

  delete(kind: 'Service' | 'EndpointSlice' | 'Node', name: string): Promise<boolean> {
    return this.call<boolean>('delete', kind, kind === 'Node' ? name : `${NAMESPACE}/${name}`);
  }
}

// ---- the agent process ---------------------------------------------------------------------

export type LogLine = { level?: string; msg?: string; component?: string } & Record<string, unknown>;

export class AgentProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  /** Non-JSON stdout lines (should stay empty). */
  readonly otherOutput: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly waiters = new Set<() => void>();

  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.otherOutput.push(line);
      }
      for (const w of [...this.waiters]) w();
    });
    child.stderr?.on('data', (c: Buffer) => { this.stderr += c.toString(); });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      for (const w of [...this.waiters]) w();
      resolve({ code, signal });
    }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last log lines and stderr, for failure messages. */
  tail(n = 15): string {
    const lines = this.logs.slice(-n).map((l) => JSON.stringify(l));
    return [...lines, ...(this.stderr.trim() ? [`stderr: ${this.stderr.trim()}`] : [])].join('\n');
  }

  find(pred: (l: LogLine) => boolean): LogLine[] {
    return this.logs.filter(pred);
  }

  /** Resolves with the first log line (already seen or new) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 45_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.logs.slice(from).find(pred);
        if (hit) {
          done();
          resolve(hit);
        } else if (!this.running) {
          done();
          reject(new Error(`agent exited before logging ${what}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`agent did not log ${what} within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}

// ---- the bed ---------------------------------------------------------------------------------

export interface AgentBedOptions {
  source: 'api' | 'manifests';
  /** Where TC-path clients run: the `client` pod outside its cgroup (default), or pod `client-tc`. */
  tcFrom?: 'client' | 'client-tc';
  /**
   * Source 'api' only: the fake API server serves HTTPS at this address alone, an extra local
   * address of the node namespace (a "node address", as the API server's real address is to an
   * agent), not at 127.0.0.1.
   */
  apiAddress?: string;
  /**
   * Dual-stack pods: each also gets its IPv6 address (POD_IP6) and the echo servers listen on
   * `::` (both families), for IPv6 and dual-stack Services beside the IPv4 ones.
   */
  ipv6?: boolean;
}

export type Path = 'connect-time' | 'tc';

export class AgentBed {
  agent: AgentProcess | undefined;
  api: FakeApiControl | undefined;

  constructor(
    readonly t: Test,
    readonly run: TestbedRun,
    readonly topo: Topology,
    /** The client pod whose processes run in clientCgroup (connect-time path). */
    readonly client: Attachment,
    readonly web: Record<WebPod, Attachment>,
    /** The pod TC-path clients run in (outside clientCgroup): `client` or `client-tc`. */
    readonly tcClient: Attachment,
    /** Cgroup with the connect-time programs; clients in it are balanced at connect(). */
    readonly clientCgroup: string,
    /** Agent pin directory (not created until the agent creates it). */
    readonly pinDir: string,
    readonly work: string,
    readonly manifestsDir: string,
    readonly socket: string,
  ) {}

  get ifacePattern(): string {
    return `veth${this.run.prefix}*`;
  }

  /** Every flag the agent gets in these tests: nothing outside the sandbox. */
  agentFlags(): string[] {
    const source = this.api ? ['--kubeconfig', this.api.kubeconfig] : ['--manifests', this.manifestsDir];
    return [
      '--node-name', NODE_NAME, ...source, '--pin-dir', this.pinDir, '--cgroup', this.clientCgroup,
      '--interfaces', this.ifacePattern, '--admin-socket', this.socket, '--metrics-address', 'off',
      '--min-sync-period', '20ms', '--log-level', 'info',
    ];
  }

  /** Argv running `args` with the agent's node inside the node namespace. */
  agentArgv(args: string[]): string[] {
    return netnsArgv(this.topo.nodeNs, [process.execPath, AGENT_JS, ...args]);
  }

  /** Starts the agent (killed at teardown) in the node namespace. */
  startAgent(extra: string[] = []): AgentProcess {
    const [cmd, ...args] = boundToParent(this.agentArgv([...this.agentFlags(), ...extra])) as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: '' } });
    this.run.own(child, `sluice-agent ${child.pid}`);
    this.agent = new AgentProcess(child);
    return this.agent;
  }

  /** Runs `sluice-agent cleanup` with the bed's flags in the node namespace. */
  runCleanupCommand(): Promise<RunResult> {
    return runCommand(this.agentArgv(['cleanup', '--pin-dir', this.pinDir, '--cgroup', this.clientCgroup, '--interfaces', this.ifacePattern, '--log-level', 'info']), {
      allowFailure: true, timeoutMs: 30_000,
    });
  }

  /** `sluicectl --socket S ARGS -o json`, parsed; throws with stderr on a non-zero exit. */
  async ctl<T>(args: string[]): Promise<T> {
    const r = await runCommand([process.execPath, SLUICECTL_JS, '--socket', this.socket, '--pin-dir', this.pinDir, ...args, '-o', 'json'], {
      allowFailure: true, timeoutMs: 20_000,
    });
    if (r.code !== 0) throw new Error(`sluicectl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as T;
  }

  status(): Promise<StatusView> {
    return this.ctl<StatusView>(['status']);
  }

  async services(): Promise<ServiceView[]> {
    return (await this.ctl<ServicesView>(['services'])).services;
  }

  /**
   * Polls `check` until it returns a value (not undefined/false) or the deadline passes. The
   * deadlines (here, waitForServices, waitForLog) are generous on purpose: they bound a hang, they
   * time nothing (an agent start took 13 s on a runner at load 8; a 15 s deadline failed there).
   */
  async waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 45_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      if (this.agent && !this.agent.running) throw new Error(`agent exited while waiting for ${what}:\n${this.agent.tail()}`);
      try {
        const v = await check();
        if (v !== undefined && v !== false) return v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}${this.agent ? `\nagent log:\n${this.agent.tail()}` : ''}`);
      }
      await new Promise((r) => setTimeout(r, 150));
    }
  }

  /** Waits until `sluicectl status` says synced (the agent programmed a complete view). */
  async waitForSynced(timeoutMs = 90_000): Promise<StatusView> {
    return this.waitFor('sluicectl status: sync.state synced', async () => {
      const s = await this.status();
      return s.agentRunning && s.sync.state === 'synced' ? s : undefined;
    }, timeoutMs);
  }

  /** Waits until the programmed service ports satisfy `pred`; returns them. */
  waitForServices(what: string, pred: (svcs: ServiceView[]) => boolean, timeoutMs = 45_000): Promise<ServiceView[]> {
    return this.waitFor(`programmed services: ${what}`, async () => {
      const svcs = await this.services();
      return pred(svcs) ? svcs : undefined;
    }, timeoutMs);
  }

  /** Waits until service port `key` (of either family) has exactly the cluster backends `pods` on `port`. */
  waitForBackends(key: string, pods: readonly WebPod[], frontendPort?: number, timeoutMs?: number): Promise<ServiceView[]> {
    const ips = key.endsWith('/IPv6') ? POD_IP6 : POD_IP;
    const want = pods.map((p) => ips[p]).sort().join(',');
    return this.waitForServices(`${key} → ${pods.join(', ') || 'no backends'}${frontendPort ? ` on port ${frontendPort}` : ''}`, (svcs) => {
      const s = svcs.find((x) => x.key === key);
      if (!s) return false;
      if (frontendPort !== undefined && !s.frontends.some((f) => f.port === frontendPort)) return false;
      return s.backends.filter((b) => b.set === 'cluster').map((b) => b.ip).sort().join(',') === want;
    }, timeoutMs);
  }

  /** `count` fresh connections (or datagrams) through one path (see tcClient for the TC path). */
  traffic(path: Path, host: string, port: number, count: number, proto: 'tcp' | 'udp' = 'tcp', timeoutMs = 2000): Promise<EchoAttempt[]> {
    return runEchoClient({
      ...(path === 'connect-time' ? { ns: this.client.ns, cgroup: this.clientCgroup } : { ns: this.tcClient.ns }), proto, host, port, count, timeoutMs,
      ...(proto === 'udp' ? { connected: true } : {}),
    });
  }

  /** `count` TCP connections to vip:port through each path (connect-time, then TC). */
  async bothPaths(vip: string, port: number, count: number, timeoutMs?: number): Promise<Record<Path, EchoAttempt[]>> {
    return {
      'connect-time': await this.traffic('connect-time', vip, port, count, 'tcp', timeoutMs),
      tc: await this.traffic('tc', vip, port, count, 'tcp', timeoutMs),
    };
  }

  /** Writes a manifest file atomically (a hidden temp file, which the source ignores, renamed). */
  async writeManifest(file: string, docs: (KubeObject | string)[]): Promise<void> {
    const text = docs.map((d) => (typeof d === 'string' ? d : JSON.stringify(d, null, 2))).join('\n---\n') + '\n';
    const tmp = join(this.manifestsDir, `.${file}.tmp`);
    await writeFile(tmp, text);
    await rename(tmp, join(this.manifestsDir, file));
  }

  async removeManifest(file: string): Promise<void> {
    await rm(join(this.manifestsDir, file), { force: true });
  }
}

/** Which pods answered, how many failed, the error codes and the slowest attempt. */
export function summarize(attempts: EchoAttempt[]): { ok: number; failed: number; pods: Record<string, number>; codes: string[]; maxMs: number } {
  const pods: Record<string, number> = {};
  const codes = new Set<string>();
  let ok = 0;
  for (const a of attempts) {
    if (a.ok && a.pod) {
      ok++;
      pods[a.pod] = (pods[a.pod] ?? 0) + 1;
    } else {
      codes.add(a.error?.code ?? 'EUNKNOWN');
    }
  }
  return { ok, failed: attempts.length - ok, pods, codes: [...codes].sort(), maxMs: Math.max(0, ...attempts.map((a) => a.ms)) };
}

// ---- traffic assertions ---------------------------------------------------------------------

/** Every attempt answered, only by `pods` (and by each of them when `all`), client IP preserved. */
export function expectServed(t: Test, attempts: EchoAttempt[], pods: readonly WebPod[], what: string, opts: { all?: boolean; vip?: string; port?: number } = {}): void {
  const s = summarize(attempts);
  t.equal(s.failed, 0, `${what}: every connection answered`, { codes: s.codes, pods: s.pods });
  t.same(Object.keys(s.pods).filter((p) => !(pods as readonly string[]).includes(p)), [], `${what}: answered only by ${pods.join(', ')}`, { pods: s.pods });
  if (opts.all) t.same(Object.keys(s.pods).sort(), [...pods].sort(), `${what}: each of ${pods.join(', ')} answered`, { pods: s.pods });
  t.ok(attempts.every((a) => !a.ok || (a.seenPeer !== undefined && a.seenPeer.address === a.local?.address && [POD_IP.client, POD_IP['client-tc']].includes(a.seenPeer.address))),
    `${what}: backends saw the client pod's own address`, { seen: [...new Set(attempts.map((a) => a.seenPeer?.address))] });
  if (opts.vip) {
    t.ok(attempts.every((a) => !a.ok || (a.peername?.address === opts.vip && a.peername?.port === opts.port)),
      `${what}: getpeername() says ${opts.vip}:${opts.port}`, { peers: attempts.map((a) => a.peername) });
  }
}

/** No attempt answered by any backend (refused, unreachable or dropped). */
export function expectNotAnswered(t: Test, attempts: EchoAttempt[], what: string): void {
  const s = summarize(attempts);
  t.equal(s.ok, 0, `${what}: nothing answered`, { pods: s.pods, codes: s.codes });
}

/** Every attempt refused (ECONNREFUSED) within 1 s, the way kube-proxy rejects. */
export function expectRefused(t: Test, attempts: EchoAttempt[], what: string): void {
  const s = summarize(attempts);
  t.ok(s.ok === 0 && s.failed > 0 && s.codes.length === 1 && s.codes[0] === 'ECONNREFUSED' && s.maxMs < 1000,
    `${what}: refused at once (ECONNREFUSED within 1 s)`, { codes: s.codes, slowestMs: s.maxMs });
}

/**
 * Builds the bed (topology, echo servers, cgroup, work dir; the fake API server for source
 * 'api'), without starting the agent. Null when the test was skipped for lack of privileges
 * (a failure under CI=true). Everything is removed at teardown, also when the test fails.
 */
export async function createAgentBed(t: Test, opts: AgentBedOptions): Promise<AgentBed | null> {
  if (!(await requirePrivileges(t))) return null;
  assertBuilt();
  const stale = staleBuildWarning();
  if (stale) t.comment(`warning: ${stale}`);
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  run.handleProcessEvents();
  const topo = await createTopology(run, { pods: ['client', ...WEB_PODS, 'client-tc'], ipv6: opts.ipv6 ?? false });
  const [client, ...webs] = topo.pods;
  const secondClient = webs.pop();
  if (!client || !secondClient || webs.length !== WEB_PODS.length) throw new Error('e2e: topology is missing pods');
  const tcClient = opts.tcFrom === 'client-tc' ? secondClient : client;
  const web = Object.fromEntries(WEB_PODS.map((name, i) => [name, webs[i] as Attachment])) as Record<WebPod, Attachment>;
  // The slices name pods by POD_IP/POD_IP6: they must be the addresses the topology handed out.
  const named = { client, ...web, 'client-tc': secondClient };
  for (const [name, pod] of Object.entries(named)) {
    const want = [POD_IP[name as keyof typeof POD_IP], opts.ipv6 ? POD_IP6[name as keyof typeof POD_IP6] : undefined];
    if (pod.ip !== want[0] || pod.ip6 !== want[1]) throw new Error(`e2e: pod ${name} got ${pod.ip}/${pod.ip6}, the bed expects ${want.join('/')}`);
  }
  const clientCgroup = await createCgroup(await run.cgroup(), 'clients');
  const pinDir = join(await run.pinDir(), 'sluice');
  const work = await mkdtemp(join(tmpdir(), 'sluice-e2e-'));
  run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  const manifestsDir = join(work, 'manifests');
  await mkdir(manifestsDir);
  const bed = new AgentBed(t, run, topo, client, web, tcClient, clientCgroup, pinDir, work, manifestsDir, join(work, 'admin.sock'));
  // Runs after every agent registered later is killed (the cleanup is LIFO), before the
  // namespaces, cgroups and pins go: the explicit way to remove what an agent attached.
  run.cleanup.add('sluice-agent cleanup', async () => {
    if (existsSync(pinDir)) await bed.runCleanupCommand();
  });
  await Promise.all(WEB_PODS.map((name) => startEchoServer(run, { name, ns: web[name].ns, tcp: [ECHO_TCP], udp: [ECHO_UDP], ...(opts.ipv6 ? { host: '::' } : {}) })));
  if (opts.source === 'api' && opts.apiAddress) {
    // On the node's loopback device (this kernel has no dummy links): a local address that is
    // neither 127.0.0.1 nor a ClusterIP.
    await runCommand(['ip', '-n', topo.nodeNs, 'addr', 'add', `${opts.apiAddress}/32`, 'dev', 'lo']);
    bed.api = await FakeApiControl.start(run, topo.nodeNs, { host: opts.apiAddress, tls: true });
  } else if (opts.source === 'api') {
    bed.api = await FakeApiControl.start(run, topo.nodeNs);
  }
  return bed;
}
