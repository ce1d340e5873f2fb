// `npm run demo`: Sluice on a two-node mini-cluster in a sandbox (src/demo/mini-cluster.ts):
// two node namespaces on a fabric, the real sluice-agent on each, pods on both, an external
// client. It shows, one line per request,
//   - in-cluster: which pod answered the ClusterIP (connect-time and TC path), then a scale-down
//     by editing the manifest (src/demo/in-cluster.ts);
//   - external: the NodePort, LoadBalancer IP and ExternalIP at node-a, whose only backend is on
//     node-b, in each external mode the agent supports (src/demo/external.ts): the pod that
//     answered, the client address it saw, the bytes node-a carried back;
// then `sluicectl` status / services / conntrack of both nodes, and removes everything it made
// (or, with --keep, leaves it up until interrupted). Nothing touches the root cgroup or the root
// network namespace.
import { relative } from 'node:path';
import { fromPackageRoot } from '../bpf/native.js';
import { SLUICECTL_JS } from '../testbed/cluster-agent.js';
import type { NodeAgent } from '../testbed/cluster-agent.js';
import { NODE_UPLINK } from '../testbed/cluster.js';
import { testbedScript } from '../testbed/echo.js';
import { TestbedRun } from '../testbed/run.js';
import { checkModes, DEMO_MODES, DOWNLOAD_BYTES, showMode, startAgents } from './external.js';
import { showInCluster } from './in-cluster.js';
import { buildMiniCluster, LB_IP } from './mini-cluster.js';
import type { MiniCluster } from './mini-cluster.js';
import { indent, say } from './say.js';

const USAGE = `usage: npm run demo [-- --keep]
  --keep   leave the mini-cluster up after the demo (until Ctrl-C or SIGTERM) and print how to explore it`;

const rel = (path: string) => relative(process.cwd(), path) || path;

async function showViews(agents: readonly NodeAgent[]): Promise<void> {
  const views = agents.flatMap((agent) => [['status'], ['services'], ['ct', 'dump']].map((args) => ({ agent, args })));
  // Asked all at once (each is a Node process start), printed in order.
  const texts = await Promise.all(views.map(({ agent, args }) => agent.ctlTable(args)));
  for (const [i, { agent, args }] of views.entries()) {
    say(`sluicectl ${args.join(' ')} on ${agent.node.name}:`);
    const text = texts[i] ?? '';
    say(indent(args[0] === 'status' ? withoutConfig(text) : text));
    say();
  }
}

/** `sluicectl status` without its CONFIG section (every flag's value), but with the external mode. */
function withoutConfig(status: string): string {
  const at = status.search(/^CONFIG$/m);
  if (at < 0) return status;
  const mode = /^\s*externalMode:\s*(\S+)/m.exec(status.slice(at))?.[1] ?? '?';
  return `${status.slice(0, at)}CONFIG (externalMode ${mode}; the rest left out here)`;
}

function explain(mc: MiniCluster, run: TestbedRun): void {
  const ctl = (a: NodeAgent) => `node ${rel(SLUICECTL_JS)} --socket ${a.socket} --pin-dir ${a.pinDir}`;
  say('The mini-cluster stays up (--keep). From another shell, as root:');
  for (const a of mc.agents) say(`  ${ctl(a)} services       # ${a.node.name}'s agent (status, ct dump, counters, ...)`);
  say(`  ip netns exec ${mc.client.ns} node ${rel(testbedScript('echo-download.mjs'))} --host ${LB_IP} --port 80 --bytes ${DOWNLOAD_BYTES}`);
  say(`  ip -n ${mc.nodeA.ns} -s link show ${NODE_UPLINK}      # node-a's uplink counters`);
  say(`  ip netns list | grep ${run.prefix}                     # every namespace of the demo`);
  say(`  edit ${mc.manifests}/*.yaml: both agents follow the files`);
  say(`Tear it down: Ctrl-C here, or kill -TERM ${process.pid}. (Were this process killed outright: node ${rel(fromPackageRoot('dist', 'src', 'testbed', 'sweep-main.js'))} removes what it left.)`);
}

/**
 * Resolves on SIGINT or SIGTERM, or on an uncaught exception (reported, exit status 1); the
 * caller then tears the sandbox down as usual.
 */
function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      process.off('uncaughtException', crashed);
      resolve();
    };
    const crashed = (err: unknown) => {
      process.stderr.write(`demo: uncaught exception while kept: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
      done();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
    process.on('uncaughtException', crashed);
  });
}

export async function runDemo(opts: { keep: boolean }): Promise<void> {
  const started = Date.now();
  const run = await TestbedRun.start();
  let uninstall = run.cleanup.handleProcessEvents();
  try {
    say('Sluice demo: a two-node mini-cluster in network namespaces, the real sluice-agent on each node.');
    const [mc, refusals] = await Promise.all([buildMiniCluster(run), checkModes()]);
    const { nodeA, nodeB } = mc;
    say(`  fabric ${mc.nodeA.ip.replace(/\.\d+$/, '.0/24')}; external client ${mc.client.name} ${mc.client.ip} (namespace ${mc.client.ns})`);
    for (const n of [nodeA, nodeB]) say(`  ${n.name} ${n.ip} (namespace ${n.ns}); pods: ${n.pods.map((p) => `${p.name} ${p.ip}`).join(', ')}`);
    say(`  the agents read ${mc.manifests}: demo/echo (ClusterIP, web-a + web-b), demo/web (NodePort + ExternalIP) and demo/web-lb (LoadBalancer), both web-b only`);

    const modes = DEMO_MODES.map((m, i) => ({ ...m, refused: refusals[i] ?? null }));
    const first = modes.find((m) => m.refused === null);
    if (!first) throw new Error(`demo: the agent refuses every external mode: ${modes.map((m) => m.refused).join('; ')}`);
    await startAgents(mc, first.mode);
    say(`  both agents run (--external-mode ${first.mode}) and have programmed the manifests`);
    say();

    let failed = await showInCluster(mc);
    let current = first.mode;
    say(`External traffic: ${mc.client.name} downloads ${DOWNLOAD_BYTES / (1 << 20)} MiB through node-a; the only backend is web-b on node-b.`);
    say();
    for (const m of modes) {
      if (m.refused !== null) {
        say(`${m.mode} mode: skipped, this sluice-agent refuses it: ${m.refused}`);
        say();
        continue;
      }
      if (m.mode !== current) {
        await startAgents(mc, m.mode);
        current = m.mode;
      }
      failed += await showMode(run, mc, m.mode, m.story);
    }

    await showViews(mc.agents);
    if (failed > 0) throw new Error(`demo: ${failed} request(s) failed or reached the wrong pod`);
    say(`The demo ran in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    if (opts.keep) {
      // Our own handler while kept: an interrupt is the expected way out, not a failure.
      uninstall();
      uninstall = () => undefined;
      explain(mc, run);
      await untilInterrupted();
      uninstall = run.cleanup.handleProcessEvents();
    }
  } finally {
    say('Cleaning up: agents stopped, programs detached, pins, namespaces and cgroups removed.');
    await run.destroy();
    uninstall();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Output piped into something that quits early (| head): keep going quietly, clean up as usual.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const unknown = args.find((a) => a !== '--keep');
  if (unknown !== undefined) {
    process.stderr.write(`demo: unknown argument ${unknown}\n${USAGE}\n`);
    process.exit(2);
  }
  runDemo({ keep: args.includes('--keep') }).then(
    () => say('Demo finished.'),
    (err: unknown) => {
      process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
