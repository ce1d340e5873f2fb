// The cost of an agent start, alone (issue 17): one node of a test-bed cluster, a real
// `sluice-agent` reading N dual-stack (or single-stack) services of the connect bench's shape
// from a manifest directory — no kube-proxy baselines, no traffic — then a cold start and R
// restarts on the pinned maps, each timed from spawn to programmed and to idle, with the agent's
// CPU seconds (utime + stime) up to idle. With --cpu-prof DIR every start writes a V8 CPU
// profile there (bench/cpu-profile-summary.ts breaks it down).
//
//   node --import ./scripts/ts-loader.mjs bench/start-profile.ts --services 10000 [--single-stack] [--restarts 3] [--cpu-prof DIR]
import { readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { clusterAgents, writeManifest } from '../src/testbed/cluster-agent.js';
import type { NodeAgent } from '../src/testbed/cluster-agent.js';
import { createCluster } from '../src/testbed/cluster.js';
import type { ClusterNode } from '../src/testbed/cluster.js';
import { TestbedRun } from '../src/testbed/run.js';
import { agentMapFlags } from './connect-bed.js';
import { processCpuSeconds, processRssBytes, statCpu } from './proc.js';
import { benchObjects } from './service-objects.js';
import { adminRequest } from '../src/admin/client.js';
import type { AdminClientError } from '../src/admin/client.js';
import type { StatusView } from '../src/admin/types.js';

const IDLE_WINDOW_MS = 1000;
const IDLE_CPU_S = 0.03;
/** The profiler's sampling alone costs an idle agent ~0.1 CPU-s per second. */
const IDLE_CPU_S_PROFILED = 0.2;

interface StartFigures {
  start: string; programmedMs: number; settledMs: number; cpuSeconds: number; firstSyncMs: number; writes: number; rssMb: number; peakMb: number;
  /** CPU seconds by thread name (comm), user / system: the main thread is the process's own name. */
  threads: Record<string, { user: number; system: number }>;
  /** The longest wait for a status answer between "running" and programmed, and how many were asked. */
  statusMaxMs: number;
  statusRequests: number;
  /** Status requests that failed (after how long, and why). */
  statusFailures: string[];
  /** The syncs and memory releases it logged until idle. */
  syncs: string[];
}

/** utime and stime of each thread of `pid`, summed by thread name. */
function threadCpu(pid: number): StartFigures['threads'] {
  const out: StartFigures['threads'] = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const { comm, user, system } = statCpu(`/proc/${pid}/task/${tid}/stat`);
    const name = tid === String(pid) ? `main (${comm})` : process.env['START_PROFILE_TIDS'] ? `${comm}#${Number(tid) - pid}` : comm;
    const t = (out[name] ??= { user: 0, system: 0 });
    t.user += user;
    t.system += system;
  }
  return out;
}

/** --node-flags: for the agent's Node (e.g. V8 heap flags). */
let extraNodeFlags: string[] = [];

async function startAndSettle(agent: NodeAgent, flags: string[], servicePorts: number, label: string, profileDir: string | undefined): Promise<StartFigures> {
  const from = agent.logs.length;
  const nodeFlags = [...extraNodeFlags, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${label}.cpuprofile`] : [])];
  const t0 = performance.now();
  const started = agent.start(flags, 300_000, nodeFlags);
  started.catch(() => undefined); // awaited below
  // Status over the admin socket from the moment it answers, one request 100 ms after the last
  // answer, until programmed: how long the agent keeps a status request waiting while it syncs.
  const statusMs: number[] = [];
  const statusFailures: string[] = [];
  const deadline = Date.now() + Math.max(300_000, servicePorts * 5);
  for (;;) {
    const s0 = performance.now();
    const st = await adminRequest<StatusView>({ socketPath: agent.socket, method: 'GET', path: '/v1/status', timeoutMs: 300_000 }).catch((err: unknown) => {
      // Before the socket listens: agent-down. Anything else is a request the agent failed (e.g.
      // its HTTP server's headers timeout, judged once a blocked event loop reads the request).
      if ((err as AdminClientError).kind !== 'agent-down') statusFailures.push(`${((performance.now() - s0) / 1000).toFixed(1)} s: ${(err as Error).message}`);
      return undefined;
    });
    if (st) statusMs.push(performance.now() - s0);
    if (st?.sync.state === 'synced' && st.sync.servicePortsProgrammed === servicePorts) break;
    if (Date.now() > deadline) throw new Error(`not programmed in time: ${JSON.stringify(st?.sync)}\n${agent.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const programmedMs = performance.now() - t0;
  await started;
  const pid = agent.child?.pid as number;
  let last = processCpuSeconds(pid);
  for (;;) {
    await new Promise((r) => setTimeout(r, IDLE_WINDOW_MS));
    const now = processCpuSeconds(pid);
    if (now - last < (profileDir ? IDLE_CPU_S_PROFILED : IDLE_CPU_S)) {
      const logs = agent.logs.slice(from);
      if (process.env['START_PROFILE_LOGS']) for (const l of logs) console.error(`  ${String(l['time'])} ${String(l['component'] ?? '')} ${String(l.msg)}`);
      const applied = logs.find((l) => l.msg === 'applied') ?? {};
      const syncs = logs.filter((l) => l.msg === 'applied' || l.msg === 'released memory after a full sync').map((l) => `${l.msg === 'applied' ? 'sync' : 'release'} ${String(l['durationMs'])} ms`);
      return {
        start: label, programmedMs, settledMs: Math.max(programmedMs, performance.now() - t0 - IDLE_WINDOW_MS), cpuSeconds: now,
        firstSyncMs: Number(applied['durationMs']), writes: Number((applied['ops'] as { writes?: number } | undefined)?.writes),
        statusMaxMs: Math.max(...statusMs), statusRequests: statusMs.length, statusFailures,
        rssMb: processRssBytes(pid) / 1048576, peakMb: processRssBytes(pid, true) / 1048576, threads: threadCpu(pid), syncs,
      };
    }
    last = now;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      services: { type: 'string', default: '10000' }, restarts: { type: 'string', default: '3' }, colds: { type: 'string', default: '1' },
      'single-stack': { type: 'boolean', default: false }, 'cpu-prof': { type: 'string' }, 'node-flags': { type: 'string', default: '' },
    },
  });
  const services = Number(values.services);
  const families = values['single-stack'] ? 1 : 2;
  const profileDir = values['cpu-prof'];
  extraNodeFlags = values['node-flags'].split(/\s+/).filter((f) => f !== '');
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  const rows: StartFigures[] = [];
  try {
    const cluster = await createCluster(run, { nodes: [['web-a']], clients: 0 });
    const node = cluster.nodes[0] as ClusterNode;
    const pod = node.pods[0] as ClusterNode['pods'][number];
    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-start-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const manifests = join(work, 'manifests');
    await mkdir(manifests);
    const measured = { name: 'measured', clusterIP: '10.96.0.11', endpoint: { ip: pod.ip, node: node.name }, ...(families === 2 ? { ipv6: { clusterIP: 'fd00:96::11', endpointIp: 'fd00:10:244:1::10' } } : {}) };
    await writeManifest(manifests, 'cluster.json', benchObjects(cluster.nodes, [measured], services - 1, node.name, families === 2));
    const servicePorts = services * families;
    const [agent] = (await clusterAgents(run, [node], work, manifests)) as [NodeAgent];
    const flags = [...agentMapFlags(services, families), ...(families === 1 ? ['--ip-families', 'IPv4'] : [])];
    for (let i = 0; i < Number(values.colds); i++) {
      if (i > 0) {
        await agent.stop('SIGTERM');
        await agent.removeDataplane();
      }
      rows.push(await startAndSettle(agent, flags, servicePorts, `cold-${i}`, profileDir));
      console.error(JSON.stringify(rows.at(-1)));
    }
    for (let i = 0; i < Number(values.restarts); i++) {
      await agent.stop('SIGTERM');
      rows.push(await startAndSettle(agent, flags, servicePorts, `restart-${i}`, profileDir));
      console.error(JSON.stringify(rows.at(-1)));
    }
    await agent.stop('SIGTERM');
  } finally {
    await run.destroy();
  }
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${services} services, ${families === 2 ? 'dual-stack' : 'IPv4'}, load ${(await import('node:os')).loadavg()[0]?.toFixed(2)}`);
  for (const r of rows) {
    console.log(`${r.start.padEnd(10)} programmed ${s(r.programmedMs).padStart(8)}  idle ${s(r.settledMs).padStart(8)}  CPU ${r.cpuSeconds.toFixed(2).padStart(6)} s  first sync ${r.firstSyncMs.toFixed(0).padStart(6)} ms  writes ${r.writes}  RSS ${r.rssMb.toFixed(0)} MB (peak ${r.peakMb.toFixed(0)})`);
    console.log(`           ${r.syncs.join(', ')}; status answered within ${r.statusMaxMs.toFixed(0)} ms (max of ${r.statusRequests}), ${r.statusFailures.length} failed${r.statusFailures.length ? ` (${r.statusFailures.join('; ')})` : ''}`);
    console.log(`           threads: ${Object.entries(r.threads).map(([n, t]) => `${n} ${t.user.toFixed(2)}u+${t.system.toFixed(2)}s`).join(', ')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
