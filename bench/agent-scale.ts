// The real agent at scale: `sluice-agent` (dist/, as the DaemonSet runs it) against the fake API
// server the e2e tests use (test/helpers/fake-apiserver.ts, which speaks the real list/watch
// protocol to the real client-node), holding N Services × M endpoints of bench/cluster.ts.
//
//   node --import ./scripts/ts-loader.mjs bench/run.ts --only agent [--services 10000] [--endpoints 10] [--changes 200]
//
// Measures what bench/control-plane.ts measures of the pipeline, but of the whole process, end to end:
//  - process start → programmed: from spawning the agent to its first "applied" log line — Node
//    start, module loading, tc.bpf.o/connect.bpf.o load and attach, the paged lists over HTTP,
//    client-node's deserialization, the first sync;
//  - endpoint change → programmed: an EndpointSlice written to the API server → watch event →
//    the agent's "applied" line (changes 100 ms apart, beyond the 50 ms min-sync period);
//  - the agent's RSS (/proc/PID/status VmRSS) when programmed, after the changes, after 30 s
//    idle, and its peak (VmHWM).
// Everything runs in a network namespace, cgroup and pin directory of a TestbedRun: the agent's
// connect-time programs go on that cgroup, its interface pattern matches no interface, and all is
// removed on success, failure and SIGINT/SIGTERM (the agent's own `cleanup` command first).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCgroup } from '../src/testbed/cgroup.js';
import { boundToParent, run as runCommand } from '../src/testbed/exec.js';
import { netnsArgv } from '../src/testbed/netns.js';
import { TestbedRun } from '../src/testbed/run.js';
import { AGENT_JS, AgentProcess, assertBuilt, FakeApiControl } from '../test/e2e/agent-bed.js';
import type { LogLine } from '../test/e2e/agent-bed.js';
import { MALLOC_ARENAS } from '../src/agent/process-memory.js';
import { ClusterState, nodeJson, NODE_NAME, serviceShape } from './cluster.js';
import { mapCapacities } from './control-plane.js';
import type { Distribution } from './stats.js';
import { distribution } from './stats.js';

export interface AgentScaleOptions {
  services: number;
  endpoints: number;
  changes: number;
  /** Idle time before the at-rest RSS sample. */
  restMs?: number;
  progress?: (line: string) => void;
}

export interface AgentScaleResult {
  bench: 'agent';
  /** Map-size flags given to the agent (empty: the defaults held the scale). */
  mapFlags?: string[];
  scale: { services: number; endpointsPerService: number; changes: number };
  /** Writing every object into the fake API server (before the agent starts; not timed against a goal). */
  loadApiServerMs: number;
  /** Spawn → first "applied" log line. */
  startToProgrammedMs: number;
  /** The agent's own figures for that first sync (model + writer). */
  firstSync: { durationMs: number; writes: number; servicePorts: number };
  /**
   * latencyMs: the write to the API server → "applied" seen by the bench; afterWriteMs: from the
   * server's answer (the watch event already sent) to the "applied" line's own timestamp (1 ms
   * resolution), i.e. without the bench ↔ fake-server hop; syncMs: the agent's sync in it.
   */
  changes: { latencyMs: Distribution; syncMs: Distribution; afterWriteMs: Distribution; count: number };
  rss: { programmed: number; afterRelease: number; afterChanges: number; atRest: number; peak: number; restMs: number };
}

const APPLIED = (l: LogLine) => l.msg === 'applied';
const RELEASED = (l: LogLine) => l.msg === 'released memory after a full sync';

/** VmRSS and VmHWM of a process, in bytes. */
async function processMemory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(/\s(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(`${field}:`)) ?? '')?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

export async function measureAgentScale(opts: AgentScaleOptions): Promise<AgentScaleResult> {
  assertBuilt();
  const { services, endpoints, changes } = opts;
  const cluster = new ClusterState(services, endpoints);
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  try {
    const ns = await run.netns('node');
    const cgroup = await createCgroup(await run.cgroup(), 'clients');
    const pinDir = join(await run.pinDir(), 'sluice');
    const work = await mkdtemp(join(tmpdir(), 'sluice-bench-agent-'));
    run.cleanup.add(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
    const ifaces = `veth${run.prefix}*`;
    // LIFO: runs after the agent is killed, before namespaces, cgroups and pins go.
    run.cleanup.add('sluice-agent cleanup', async () => {
      await runCommand(netnsArgv(ns, [process.execPath, AGENT_JS, 'cleanup', '--pin-dir', pinDir, '--cgroup', cgroup, '--interfaces', ifaces]), {
        allowFailure: true, timeoutMs: 30_000,
      });
    });
    const api = await FakeApiControl.start(run, ns);

    opts.progress?.(`agent: writing ${services} Services and EndpointSlices into the fake API server`);
    let t = performance.now();
    const writes: Promise<unknown>[] = [api.apply(nodeJson() as never)];
    for (let i = 0; i < services; i++) writes.push(api.apply(cluster.serviceJson(i) as never), api.apply(cluster.sliceJson(i) as never));
    await Promise.all(writes);
    const loadApiServerMs = performance.now() - t;

    // Map sizes as the control-plane bench's at this scale (the defaults unless it needs more: at
    // 65,536 single-port Services the svc_id space and the backend map are past theirs).
    const caps = mapCapacities(cluster.expected(), endpoints);
    const sizes: [string, number, number][] = [['frontends', caps['sl_frontends4'] as number, 65_536], ['cluster-ips', caps['sl_frontends4'] as number, 65_536],
      ['backends', caps['sl_backends4'] as number, 262_144], ['service-ids', caps['sl_svc_meta'] as number, 65_536]];
    const mapFlags = sizes.filter(([, n, byDefault]) => n > byDefault).flatMap(([name, n]) => [`--map-size-${name}`, String(n)]);
    const flags = [
      ...mapFlags,
      '--node-name', NODE_NAME, '--kubeconfig', api.kubeconfig, '--pin-dir', pinDir, '--cgroup', cgroup, '--interfaces', ifaces,
      '--admin-socket', join(work, 'admin.sock'), '--metrics-address', 'off', '--log-level', 'info',
    ];
    // SLUICE_BENCH_AGENT_NODE_FLAGS: node/V8 flags for the agent (e.g. --cpu-prof --cpu-prof-dir=DIR).
    const nodeFlags = (process.env['SLUICE_BENCH_AGENT_NODE_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== '');
    const [cmd, ...args] = boundToParent(netnsArgv(ns, [process.execPath, ...nodeFlags, AGENT_JS, ...flags])) as [string, ...string[]];
    t = performance.now();
    // MALLOC_ARENA_MAX as daemonset/sluice.yaml sets it (src/agent/process-memory.ts).
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, SLUICE_LOG_LEVEL: '', NODE_OPTIONS: '', MALLOC_ARENA_MAX: String(MALLOC_ARENAS) } });
    run.own(child, `sluice-agent ${child.pid}`);
    const agent = new AgentProcess(child);
    const first = await agent.waitForLog(APPLIED, 'its first apply', 300_000);
    const startToProgrammedMs = performance.now() - t;
    const pid = child.pid as number;
    const programmed = await processMemory(pid);
    // Right after the first sync the agent gives the sync's garbage back (Reconciler releaseMemory).
    await agent.waitForLog(RELEASED, 'the memory release after its first sync', 30_000);
    await new Promise((r) => setTimeout(r, 500)); // V8 uncommits the freed heap over a few hundred ms
    const afterRelease = await processMemory(pid);
    const services0 = first['services'] as { added?: number } | undefined;
    const ops0 = first['ops'] as { writes?: number } | undefined;
    const expected = cluster.expected();
    if (services0?.added !== expected.servicePorts || first['errors'] !== 0) {
      throw new Error(`agent bench: the first apply added ${services0?.added} service ports with ${String(first['errors'])} errors, want ${expected.servicePorts} and 0`);
    }
    opts.progress?.(`agent: programmed ${startToProgrammedMs.toFixed(0)} ms after spawn; ${changes} changes next`);

    const latency: number[] = [];
    const syncMs: number[] = [];
    const afterWriteMs: number[] = [];
    for (let k = 0; k < changes; k++) {
      const i = (k * 7919 + 11) % services;
      cluster.change(i, k);
      await new Promise((r) => setTimeout(r, 100));
      const from = agent.logs.length;
      const c0 = performance.now();
      await api.apply(cluster.sliceJson(i) as never);
      // The fake server has answered: it wrote the watch event before (wall clock, as pino's).
      const written = Date.now();
      const line = await agent.waitForLog(APPLIED, `the apply of change ${k} (${serviceShape(i).name})`, 30_000, from);
      latency.push(performance.now() - c0);
      afterWriteMs.push(Math.max(0, Date.parse(String(line['time'])) - written));
      syncMs.push(Number(line['durationMs']));
      if ((line['errors'] as number) > 0) throw new Error(`agent bench: change ${k} applied with errors: ${JSON.stringify(line)}`);
    }
    const afterChanges = await processMemory(pid);
    const restMs = opts.restMs ?? 30_000;
    opts.progress?.(`agent: idle ${restMs / 1000} s for the at-rest RSS`);
    await new Promise((r) => setTimeout(r, restMs));
    const atRest = await processMemory(pid);
    if (!agent.running) throw new Error(`agent bench: the agent exited:\n${agent.tail()}`);
    await agent.kill('SIGTERM');
    return {
      bench: 'agent', mapFlags,
      scale: { services, endpointsPerService: endpoints, changes },
      loadApiServerMs,
      startToProgrammedMs,
      firstSync: { durationMs: Number(first['durationMs']), writes: ops0?.writes ?? NaN, servicePorts: services0?.added ?? NaN },
      changes: { latencyMs: distribution(latency), syncMs: distribution(syncMs), afterWriteMs: distribution(afterWriteMs), count: latency.length },
      rss: { programmed: programmed.rss, afterRelease: afterRelease.rss, afterChanges: afterChanges.rss, atRest: atRest.rss, peak: atRest.peak, restMs },
    };
  } finally {
    await run.destroy();
  }
}

export function formatAgentScale(r: AgentScaleResult): string {
  const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
  const row = (label: string, value: string) => `${label.padEnd(48)}${value.padStart(14)}`;
  const c = r.changes.latencyMs;
  return [
    `the agent process: ${r.scale.services} Services × ${r.scale.endpointsPerService} endpoints from the fake API server (real client-node list/watch)`,
    row('process start → programmed', `${r.startToProgrammedMs.toFixed(0)} ms`),
    row('  of it the first sync (model + writer)', `${r.firstSync.durationMs.toFixed(0)} ms`),
    row('  service ports added / map elements written', `${r.firstSync.servicePorts} / ${r.firstSync.writes}`),
    row(`endpoint change → programmed p50 / p99 (n=${r.changes.count})`, `${c.p50.toFixed(1)} / ${c.p99.toFixed(1)} ms`),
    row('  from the watch event sent p50 / p99', `${r.changes.afterWriteMs.p50.toFixed(0)} / ${r.changes.afterWriteMs.p99.toFixed(0)} ms`),
    row('  of it the agent\'s sync p50 / p99', `${r.changes.syncMs.p50.toFixed(1)} / ${r.changes.syncMs.p99.toFixed(1)} ms`),
    row('RSS programmed/released/after changes', `${mb(r.rss.programmed)} / ${mb(r.rss.afterRelease)} / ${mb(r.rss.afterChanges)}`),
    row(`RSS at rest (idle ${(r.rss.restMs / 1000).toFixed(0)} s) / peak (VmHWM)`, `${mb(r.rss.atRest)} / ${mb(r.rss.peak)}`),
    row('(writing the objects into the fake API server)', `${r.loadApiServerMs.toFixed(0)} ms`),
  ].join('\n');
}
