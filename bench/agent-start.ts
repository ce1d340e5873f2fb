// Time to settle and the CPU cost of an agent start (issue 17), on the connect bench's bed at a
// given scale (bench/connect-bed.ts, the Sluice node holding N services):
//  - restart on pinned maps: SIGTERM, start again (an upgrade or a rolling update of the
//    DaemonSet). Traffic must not notice: the sluice-connect client keeps opening connections
//    through the VIP all along; their latency during the restart is set against the same
//    client's just before it;
//  - cold start: the agent stopped and its dataplane removed (`sluice-agent cleanup`: no pins, no
//    links), then started: the time from spawning the process to the first connection through
//    the VIP that works, on the connect-time path and on the TC-only path.
// Both report the agent's CPU seconds (utime + stime, /proc/<pid>/stat) from spawn until it is
// idle — programmed, and under IDLE_CPU_S of CPU in IDLE_WINDOW_MS — and the time to that point.
// Traffic here is IPv4 (the bed's IPv4 clients); in a dual-stack bed the agent programs both families.
import type { Attempt } from '../test/traffic/traffic-client.js';
import type { ConnectBed, ConnectPath } from './connect-bed.js';
import { processCpuSeconds, processRssBytes } from './proc.js';
import { waitProgrammed } from './service-objects.js';
import { distribution } from './stats.js';

const IDLE_WINDOW_MS = 1000;
const IDLE_CPU_S = 0.03;

export interface StartCost {
  /** Spawn → the agent's "programmed" status with every service port. */
  programmedMs: number;
  /** Spawn → idle (see above). */
  settledMs: number;
  /** CPU seconds of the agent process from spawn to idle. */
  cpuSeconds: number;
  /** The agent's RSS when idle, and its peak (VmHWM), bytes. */
  rssBytes: number;
  peakRssBytes: number;
}

export interface AgentStartResult {
  services: number;
  restart: StartCost & {
    /** The connect-time client's connections before and during the restart (until idle). */
    before: { p50: number; p99: number; connections: number };
    during: { p50: number; p99: number; max: number; connections: number; failures: number };
  };
  coldStart: StartCost & {
    /** Spawn → the first connection through the VIP that reached the backend, per path. */
    firstConnectionMs: Partial<Record<ConnectPath, number>>;
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startAndSettle(bed: ConnectBed, t0: number): Promise<StartCost> {
  await bed.agent.start(bed.agentFlags, 300_000);
  const pid = bed.agent.child?.pid;
  if (pid === undefined) throw new Error('agent start: no pid');
  // At 65k dual-stack services on a loaded 2-CPU machine a restart took minutes: 5 ms per service port, 300 s at least.
  await waitProgrammed(bed.agent, bed.servicePorts(), Math.max(300_000, bed.servicePorts() * 5));
  const programmedMs = performance.now() - t0;
  let last = processCpuSeconds(pid);
  for (;;) {
    await pause(IDLE_WINDOW_MS);
    const now = processCpuSeconds(pid);
    if (now - last < IDLE_CPU_S) {
      return {
        programmedMs, settledMs: Math.max(programmedMs, performance.now() - t0 - IDLE_WINDOW_MS), cpuSeconds: now,
        rssBytes: processRssBytes(pid), peakRssBytes: processRssBytes(pid, true),
      };
    }
    last = now;
  }
}

/** Opens connections on `path` one batch after another until `stop` resolves. */
async function sample(bed: ConnectBed, path: ConnectPath, until: Promise<unknown>): Promise<Attempt[]> {
  const p = bed.path(path);
  let done = false;
  void until.finally(() => { done = true; });
  const out: Attempt[] = [];
  while (!done) out.push(...(await p.client.tcp(p.target, 20)));
  return out;
}

async function restartOnPins(bed: ConnectBed): Promise<AgentStartResult['restart']> {
  const p = bed.path('sluice-connect');
  const before = distribution((await p.client.tcp(p.target, 200)).filter((a) => a.ok).map((a) => a.ms));
  let settled!: () => void;
  const over = new Promise<void>((r) => (settled = r));
  const during = sample(bed, 'sluice-connect', over);
  const t0 = performance.now();
  let cost: StartCost;
  try {
    await bed.agent.stop('SIGTERM');
    cost = await startAndSettle(bed, t0);
  } finally {
    settled();
  }
  const attempts = await during;
  const ok = attempts.filter((a) => a.ok && a.backend === p.backend);
  const d = distribution(ok.map((a) => a.ms));
  return {
    ...cost,
    before: { p50: before.p50, p99: before.p99, connections: before.count },
    during: { p50: d.p50, p99: d.p99, max: d.max, connections: attempts.length, failures: attempts.length - ok.length },
  };
}

async function firstConnection(bed: ConnectBed, path: ConnectPath, t0: number, deadline: number): Promise<number> {
  const p = bed.path(path);
  for (;;) {
    const [a] = await p.client.tcp({ ...p.target, timeoutMs: 250 }, 1);
    if (a?.ok && a.backend === p.backend) return performance.now() - t0;
    if (Date.now() > deadline) throw new Error(`agent cold start: no connection on ${path} within 300 s of the spawn:\n${bed.agent.tail()}`);
    await pause(20);
  }
}

async function coldStart(bed: ConnectBed): Promise<AgentStartResult['coldStart']> {
  await bed.agent.stop('SIGTERM');
  await bed.agent.removeDataplane();
  for (const path of ['sluice-connect', 'sluice-tc'] as const) {
    const p = bed.path(path);
    const [a] = await p.client.tcp({ ...p.target, timeoutMs: 250 }, 1);
    if (a?.ok) throw new Error(`agent cold start: ${path} still reaches the VIP with the dataplane removed`);
  }
  const t0 = performance.now();
  const deadline = Date.now() + 300_000;
  const first = Promise.all((['sluice-connect', 'sluice-tc'] as const).map(async (path) => [path, await firstConnection(bed, path, t0, deadline)] as const));
  const cost = await startAndSettle(bed, t0);
  return { ...cost, firstConnectionMs: Object.fromEntries(await first) };
}

/** Restart on pins, then cold start, at the bed's current scale. */
export async function measureAgentStart(bed: ConnectBed): Promise<AgentStartResult> {
  const restart = await restartOnPins(bed);
  const cold = await coldStart(bed);
  return { services: bed.services, restart, coldStart: cold };
}

export function formatAgentStart(rows: readonly AgentStartResult[]): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const lines = [`${'services'.padStart(8)}  ${'start'.padEnd(12)} ${'programmed'.padStart(10)} ${'settled'.padStart(9)} ${'CPU'.padStart(8)}  notes`];
  for (const r of rows) {
    const re = r.restart;
    lines.push([String(r.services).padStart(8), ` ${'on pins'.padEnd(12)}`, s(re.programmedMs).padStart(10), s(re.settledMs).padStart(9), `${re.cpuSeconds.toFixed(2)} s`.padStart(8),
      ` connect p50/p99 ${re.before.p50.toFixed(2)}/${re.before.p99.toFixed(2)} ms before, ${re.during.p50.toFixed(2)}/${re.during.p99.toFixed(2)} ms during ` +
      `(max ${re.during.max.toFixed(1)}; ${re.during.connections} connections, ${re.during.failures} failed)`].join(' '));
    const c = r.coldStart;
    lines.push([String(r.services).padStart(8), ` ${'cold'.padEnd(12)}`, s(c.programmedMs).padStart(10), s(c.settledMs).padStart(9), `${c.cpuSeconds.toFixed(2)} s`.padStart(8),
      ` first connection: connect-time ${s(c.firstConnectionMs['sluice-connect'] ?? NaN)}, TC ${s(c.firstConnectionMs['sluice-tc'] ?? NaN)}`].join(' '));
  }
  return lines.join('\n');
}
