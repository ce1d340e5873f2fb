// The TypeScript side of client.mjs: a long-lived client process in a pod's network namespace
// and cgroup, driven by JSON commands (see client.mjs for the protocol).
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { spawnInCgroup } from '../../src/testbed/cgroup.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { killAndWait } from '../../src/testbed/run.js';

const CLIENT_SCRIPT = fromPackageRoot('test', 'traffic', 'client.mjs');

/** One connection or datagram exchange. */
export interface Attempt {
  ok: boolean;
  /** Name of the echo server that answered. */
  backend?: string;
  /** The client address:port the backend saw. */
  peer?: string;
  /** getpeername() on the client socket (TCP, connected UDP). */
  remote?: string;
  /** Source of the reply as recvfrom() reported it (UDP). */
  from?: string;
  /** errno name (or ETIMEDOUT, EBADANSWER, EEOF) when !ok. */
  code?: string;
  message?: string;
  /** Wall time of the attempt in milliseconds. */
  ms: number;
}

export interface LoopStats {
  attempts: number;
  failures: number;
  failSamples: Attempt[];
  backends: Record<string, number>;
}

export interface Target {
  host: string;
  port: number;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 1000;

type Pending = { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void };

export class TrafficClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private stderr = '';
  private exited: string | undefined;

  private constructor(private readonly child: ChildProcess, private readonly what: string) {
    createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
    child.stderr?.on('data', (c: Buffer) => { this.stderr += c.toString(); });
    child.once('exit', (code, sig) => {
      this.exited = `${what} exited (${code ?? sig})${this.stderr.trim() ? ': ' + this.stderr.trim() : ''}`;
      for (const p of this.pending.values()) p.reject(new Error(this.exited));
      this.pending.clear();
    });
  }

  /** Starts client.mjs in `ns` inside `cgroup`; the run kills it at cleanup. */
  static async start(run: TestbedRun, ns: string, cgroup: string): Promise<TrafficClient> {
    const child = spawnInCgroup(cgroup, nodeArgv(CLIENT_SCRIPT), ns, { stdio: ['pipe', 'pipe', 'pipe'] });
    const client = new TrafficClient(child, `traffic client in ${ns}`);
    run.cleanup.add(`traffic client in ${ns}`, () => killAndWait(child));
    await client.awaitId(0, 'the ready line', 10_000);
    return client;
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const id = typeof msg.id === 'number' ? msg.id : -1;
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (typeof msg.error === 'string') p.reject(new Error(`${this.what}: ${msg.error}`));
    else p.resolve(msg);
  }

  /** Waits for the answer carrying `id` (id 0 is the client's "ready" line). */
  private awaitId(id: number, what: string, timeoutMs: number): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.what}: no answer to ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  private request(cmd: Record<string, unknown>, timeoutMs: number): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const answer = this.awaitId(id, JSON.stringify(cmd), timeoutMs);
    this.child.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    return answer;
  }

  /** `count` sequential TCP connections to the target. */
  async tcp(target: Target, count = 1): Promise<Attempt[]> {
    const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const r = await this.request({ op: 'tcp', ...target, timeoutMs, count }, 10_000 + count * (timeoutMs + 100));
    return r.results as Attempt[];
  }

  /**
   * `count` UDP exchanges. With `socket`, the same named socket is reused across calls (one
   * long flow); `connected` connects it to the target first.
   */
  async udp(target: Target, count = 1, opts: { socket?: string; connected?: boolean } = {}): Promise<Attempt[]> {
    const timeoutMs = target.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const r = await this.request({ op: 'udp', ...target, ...opts, timeoutMs, count }, 10_000 + count * (timeoutMs + 100));
    return r.results as Attempt[];
  }

  async closeUdp(socket: string): Promise<void> {
    await this.request({ op: 'udp-close', socket }, 5_000);
  }

  /** Starts workers that open new flows (a fresh socket each), `gapMs` apart, until stopLoop(). */
  async startLoop(loop: string, target: Target, opts: { proto: 'tcp' | 'udp'; workers?: number; gapMs?: number; connected?: boolean }): Promise<void> {
    await this.request({ op: 'loop', loop, ...target, timeoutMs: target.timeoutMs ?? DEFAULT_TIMEOUT_MS, workers: 1, gapMs: 0, ...opts }, 5_000);
  }

  async stopLoop(loop: string): Promise<LoopStats> {
    return (await this.request({ op: 'stop', loop }, 30_000)) as unknown as LoopStats;
  }
}
