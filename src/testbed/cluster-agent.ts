// One real sluice-agent per node of a createCluster() sandbox, each with its own pin directory,
// cgroup (connect-time programs) and admin socket, all reading one shared manifest directory
// (the "API server" of the sandbox cluster). The agent runs inside its node's namespace with
// netnsArgv (bpffs and cgroup2 stay visible), its TC programs go on that node's pod veths and on
// its fabric uplink (eth0) only. At cleanup: agent killed, `sluice-agent cleanup` run for its
// node, then the run removes namespaces, cgroups and pins.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fromPackageRoot } from '../bpf/native.js';
import { createCgroup } from './cgroup.js';
import type { ClusterNode } from './cluster.js';
import { NODE_UPLINK } from './cluster.js';
import { boundToParent, run as runCommand } from './exec.js';
import { netnsArgv } from './netns.js';
import type { TestbedRun } from './run.js';

export const AGENT_JS = fromPackageRoot('dist', 'src', 'cli', 'agent.js');
export const SLUICECTL_JS = fromPackageRoot('dist', 'src', 'cli', 'sluicectl.js');

export type AgentLog = { level?: number | string; msg?: string } & Record<string, unknown>;

export class NodeAgent {
  readonly logs: AgentLog[] = [];
  stderr = '';
  child: ChildProcess | undefined;

  constructor(
    readonly run: TestbedRun,
    readonly node: ClusterNode,
    readonly pinDir: string,
    /** cgroup with this node's connect-time programs (the node's "own processes" run here). */
    readonly cgroup: string,
    readonly socket: string,
    readonly manifestsDir: string,
  ) {}

  flags(): string[] {
    return [
      '--node-name', this.node.name, '--manifests', this.manifestsDir, '--pin-dir', this.pinDir, '--cgroup', this.cgroup,
      '--interfaces', `veth${this.run.prefix}*`, '--host-interfaces', NODE_UPLINK, '--admin-socket', this.socket,
      '--metrics-address', 'off', '--min-sync-period', '20ms', '--log-level', 'info',
    ];
  }

  /**
   * Starts (or restarts) the agent; resolves once it logs that it runs. The wait is generous: on
   * a CI machine shared by parallel test files, Node's start-up alone can take many seconds.
   * `nodeFlags`: for Node itself, e.g. --cpu-prof (not allowed in NODE_OPTIONS).
   */
  async start(extra: string[] = [], timeoutMs = 60_000, nodeFlags: string[] = []): Promise<void> {
    const [cmd, ...args] = boundToParent(netnsArgv(this.node.ns, [process.execPath, ...nodeFlags, AGENT_JS, ...this.flags(), ...extra])) as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: '' } });
    this.child = child;
    this.run.own(child, `sluice-agent ${this.node.name} ${child.pid}`);
    child.stderr?.on('data', (c: Buffer) => { this.stderr += c.toString(); });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent ${this.node.name} not running after ${timeoutMs / 1000} s:\n${this.tail()}`)), timeoutMs);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        try {
          const l = JSON.parse(line) as AgentLog;
          this.logs.push(l);
          if (l.msg === 'sluice-agent running') {
            clearTimeout(timer);
            resolve();
          }
        } catch {
          // not a log line
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`agent ${this.node.name} exited (${code}):\n${this.tail()}`));
      });
    });
  }

  /** Stops the agent (SIGTERM: an ordinary stop, the dataplane stays; SIGKILL: a crash, the same). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await gone;
  }

  /**
   * Resolves with the first log line from index `from` on (`this.logs.length` before the action
   * it should follow) that matches; rejects after `timeoutMs`.
   */
  async waitForLog(match: (l: AgentLog) => boolean, from = 0, timeoutMs = 30_000): Promise<AgentLog> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs.slice(from).find(match);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`agent ${this.node.name}: no matching log line in ${timeoutMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * `sluice-agent cleanup` for this node (the agent stopped first): links, TC filters and pins
   * removed, as an uninstall does. No drain: the bed's traffic is over (or, in a bench's cold
   * start, meant to stop).
   */
  async removeDataplane(): Promise<void> {
    if (!existsSync(this.pinDir)) return;
    await runCommand(netnsArgv(this.node.ns, [process.execPath, AGENT_JS, 'cleanup', '--pin-dir', this.pinDir, '--cgroup', this.cgroup,
      '--interfaces', `veth${this.run.prefix}*`, '--host-interfaces', NODE_UPLINK, '--cleanup-drain', '0s', '--log-level', 'warn']), { allowFailure: true, timeoutMs: 180_000 });
  }

  tail(n = 15): string {
    return [...this.logs.slice(-n).map((l) => JSON.stringify(l)), this.stderr.trim()].filter(Boolean).join('\n');
  }

  /** `sluicectl ARGS -o json` against this node's agent. */
  async ctl<T>(args: string[]): Promise<T> {
    const r = await runCommand([process.execPath, SLUICECTL_JS, '--socket', this.socket, '--pin-dir', this.pinDir, ...args, '-o', 'json'], {
      allowFailure: true, timeoutMs: 20_000,
    });
    if (r.code !== 0) throw new Error(`sluicectl ${args.join(' ')} (${this.node.name}) exited ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as T;
  }

  /** `sluicectl ARGS` against this node's agent, as a person reads it (the table output). */
  async ctlTable(args: string[]): Promise<string> {
    const r = await runCommand([process.execPath, SLUICECTL_JS, '--socket', this.socket, '--pin-dir', this.pinDir, ...args], {
      allowFailure: true, timeoutMs: 20_000,
    });
    if (r.code !== 0) throw new Error(`sluicectl ${args.join(' ')} (${this.node.name}) exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }
}

/**
 * What the agent says about `flags` when it refuses them (its one-line flag error), or null when
 * it accepts them. Checked with a trailing --version: the flags before it are validated, nothing runs,
 * nothing touches the kernel, no namespace needed — e.g. an --external-mode this build lacks.
 */
export async function agentRefusesFlags(flags: string[]): Promise<string | null> {
  const r = await runCommand([process.execPath, AGENT_JS, ...flags, '--version'], { allowFailure: true, timeoutMs: 20_000 });
  return r.code === 0 ? null : r.stderr.trim() || `sluice-agent exited ${r.code}`;
}

/** One agent per node (not started). `work` is a scratch directory of the run. */
export async function clusterAgents(run: TestbedRun, nodes: readonly ClusterNode[], work: string, manifestsDir: string): Promise<NodeAgent[]> {
  const pinRoot = await run.pinDir();
  const cgRoot = await run.cgroup();
  const agents: NodeAgent[] = [];
  for (const node of nodes) {
    agents.push(new NodeAgent(run, node, join(pinRoot, node.name), await createCgroup(cgRoot, node.name), join(work, `${node.name}.sock`), manifestsDir));
  }
  // LIFO: runs after the agents (registered later, by start) are killed. Every node's cleanup at
  // once (each is a Node process start and a few detaches: seconds on a loaded machine). No
  // drain: the bed's traffic is over, and 5 s waits would only lengthen every run.
  run.cleanup.add(`sluice-agent cleanup ${nodes.map((n) => n.name).join(', ')}`, async () => {
    await Promise.all(agents.map((agent) => agent.removeDataplane()));
  });
  return agents;
}

/** Writes a manifest file atomically (hidden temp file renamed; the source ignores dot files). */
export async function writeManifest(dir: string, file: string, objects: unknown[]): Promise<void> {
  const tmp = join(dir, `.${file}.tmp`);
  await writeFile(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  await rename(tmp, join(dir, file));
}

/** Waits until every agent reports its sources synced and programmed. */
export async function waitSynced(agents: readonly NodeAgent[], timeoutMs = 90_000): Promise<void> {
  for (const a of agents) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await a.ctl<{ sync: { state: string } }>(['status']).catch(() => undefined);
      if (st?.sync.state === 'synced') break;
      if (Date.now() > deadline) throw new Error(`${a.node.name} never synced:\n${a.tail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
