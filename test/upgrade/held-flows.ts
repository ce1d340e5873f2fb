// The TypeScript side of held-flows.mjs: established TCP flows held open across an agent restart
// or upgrade, from one pod's namespace and cgroup (the cgroup decides the path: one with the
// connect-time programs, or one without them for the TC path).
import { createInterface } from 'node:readline';
import { fromPackageRoot } from '../../src/bpf/native.js';
import { spawnInCgroup } from '../../src/testbed/cgroup.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import type { TestbedRun } from '../../src/testbed/run.js';
import { killAndWait } from '../../src/testbed/run.js';

const HELD_FLOWS = fromPackageRoot('test', 'upgrade', 'held-flows.mjs');

export interface HeldReady {
  ready?: boolean;
  /** Per flow: the pod that greeted it, and the host it was opened to. */
  pods?: string[];
  hosts?: string[];
}

export interface HeldReport {
  rounds: number;
  answered: number;
  failures: unknown[];
  pods: string[];
  open: number;
}

export interface HeldFlows {
  ready: HeldReady;
  /** Stops the pings and returns what they saw. */
  stop(): Promise<HeldReport>;
  stderr(): string;
}

/**
 * Opens `count` TCP flows to each of `hosts` on `port` and pings them every `intervalMs` until
 * stop(). Resolves once they are established (ready.ready false when they could not be).
 */
export async function startHeldFlows(run: TestbedRun, ns: string, cgroup: string, hosts: string[], port: number, count: number, intervalMs = 100): Promise<HeldFlows> {
  const child = spawnInCgroup(cgroup, nodeArgv(HELD_FLOWS, [hosts.join(','), String(port), String(count), String(intervalMs)]), ns, { stdio: ['pipe', 'pipe', 'pipe'] });
  run.cleanup.add(`held flows to ${hosts.join(',')}`, () => killAndWait(child));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => JSON.parse(String((await lines.next()).value ?? '{}')) as T;
  const ready = await next<HeldReady>();
  return {
    ready,
    stderr: () => stderr,
    async stop() {
      child.stdin!.write('stop\n');
      return next<HeldReport>();
    },
  };
}
