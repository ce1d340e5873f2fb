// No black holes under churn: a client opening TCP connections and UDP flows back to back sees
// zero failures while (1) the backend set is replaced one by one, each removed backend's
// server going away after a grace period as a terminating pod's would, and (2) the service is
// updated 100 times (a backend added and removed again, affinity switched on and off). Run
// with connect-time load balancing and again on the TC path. In dual stack (issue 16): the
// Service has an IPv6 port beside each IPv4 one over the same pods, churned by the same updates,
// and the client streams to both VIPs.
import t from 'tap';
import type { Test } from 'tap';
import type { EchoServer } from '../../src/testbed/echo.js';
import { startEchoServer } from '../../src/testbed/echo.js';
import type { Bed, CtlbMode } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { LoopStats, Target } from './traffic-client.js';

const VIP = '10.96.0.20';
const VIP6 = 'fd00:96::20';
const PORT = 80;
const BACKEND_PORT = 8080;
const PODS = ['be0', 'be1', 'be2', 'be3', 'be4', 'be5'];
/** How long a removed backend keeps serving (its in-flight connections finish). */
const GRACE_MS = 300;
const UPDATES = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function services(bed: Bed, names: string[], affinitySec = 0) {
  const backends = names.map((n) => backendOf(bed.pod(n), BACKEND_PORT));
  const backends6 = names.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6'));
  return desiredState(
    clusterIpService({ name: 'churn', vip: VIP, port: PORT, protocol: 'TCP', backends, affinityTimeoutSec: affinitySec }),
    clusterIpService({ name: 'churn-udp', vip: VIP, port: PORT, protocol: 'UDP', backends, affinityTimeoutSec: affinitySec }),
    clusterIpService({ name: 'churn', family: 'IPv6', vip: VIP6, port: PORT, protocol: 'TCP', backends: backends6, affinityTimeoutSec: affinitySec }),
    clusterIpService({ name: 'churn-udp', family: 'IPv6', vip: VIP6, port: PORT, protocol: 'UDP', backends: backends6, affinityTimeoutSec: affinitySec }),
  );
}

/** A backend pod's echo server, serving both families. */
const serve = (bed: Bed, name: string) => startEchoServer(bed.run, { name, ns: bed.pod(name).ns, tcp: [BACKEND_PORT], udp: [BACKEND_PORT], host: '::' });

type Stats = Record<'tcp' | 'udp' | 'tcp6' | 'udp6', LoopStats>;

/** Runs `body` while TCP and UDP loops hammer both VIPs; returns every loop's statistics. */
async function underLoad(bed: Bed, body: () => Promise<void>): Promise<Stats> {
  const target: Target = { host: VIP, port: PORT, timeoutMs: 2000 };
  const target6: Target = { host: VIP6, port: PORT, timeoutMs: 2000 };
  // Paced (a few hundred flows a second): enough to catch any window, without starving the
  // shared CPUs or flooding conntrack. IPv6 TCP with one worker: the machine is shared.
  await bed.client.startLoop('tcp', target, { proto: 'tcp', workers: 2, gapMs: 5 });
  await bed.client.startLoop('udp', target, { proto: 'udp', gapMs: 5 });
  await bed.client.startLoop('tcp6', target6, { proto: 'tcp', workers: 1, gapMs: 5 });
  await bed.client.startLoop('udp6', target6, { proto: 'udp', gapMs: 5 });
  let failure: unknown;
  try {
    await body();
  } catch (err) {
    failure = err;
  }
  // The loops are stopped even when the body failed, so none outlives the test.
  const tcp = await bed.client.stopLoop('tcp');
  const udp = await bed.client.stopLoop('udp');
  const tcp6 = await bed.client.stopLoop('tcp6');
  const udp6 = await bed.client.stopLoop('udp6');
  if (failure !== undefined) throw failure;
  return { tcp, udp, tcp6, udp6 };
}

function checkLoops(t: Test, stats: Stats, minAttempts: number): void {
  for (const [proto, s] of Object.entries(stats)) {
    t.comment(`${proto}: ${s.attempts} attempts, backends ${JSON.stringify(s.backends)}`);
    t.ok(s.attempts >= minAttempts, `${proto}: the client kept trying (${s.attempts} >= ${minAttempts})`);
    t.equal(s.failures, 0, `${proto}: zero failed flows (samples: ${JSON.stringify(s.failSamples.slice(0, 3))})`);
  }
}

async function churn(t: Test, ctlb: CtlbMode, tc: boolean): Promise<void> {
  const bed = await createBed(t, { pods: ['client', ...PODS], ctlb, tc, ipv6: true });
  if (!bed) return;
  const servers = await bed.startBackends(PODS, BACKEND_PORT, '::');
  let serving = ['be0', 'be1', 'be2'];
  bed.writer.apply(services(bed, serving));

  await t.test('backend set replaced one by one', async (t) => {
    const started = Date.now();
    // be0..be2 -> be3..be5, then back to be0..be2 with fresh servers: six replacements.
    const plan: [string, string][] = [['be0', 'be3'], ['be1', 'be4'], ['be2', 'be5'], ['be3', 'be0'], ['be4', 'be1'], ['be5', 'be2']];
    const stats = await underLoad(bed, async () => {
      for (const [out, inn] of plan) {
        if (!servers.has(inn)) servers.set(inn, await serve(bed, inn));
        serving = [...serving.filter((n) => n !== out), inn];
        bed.writer.apply(services(bed, serving));
        await sleep(GRACE_MS);
        const server: EchoServer | undefined = servers.get(out);
        servers.delete(out);
        await server?.stop();
        await sleep(50);
      }
    });
    t.comment(`replacements took ${Date.now() - started} ms`);
    checkLoops(t, stats, 100);
    for (const [proto, s] of Object.entries(stats)) {
      t.ok(Object.keys(s.backends).length >= 4, `${proto}: flows reached old and new backends (${Object.keys(s.backends).join(',')})`);
    }
  });

  await t.test(`service updated ${UPDATES} times`, async (t) => {
    const extra = 'be3';
    if (!servers.has(extra)) servers.set(extra, await serve(bed, extra));
    const started = Date.now();
    const stats = await underLoad(bed, async () => {
      for (let i = 0; i < UPDATES; i++) {
        const names = i % 2 === 0 ? [...serving, extra] : serving;
        bed.writer.apply(services(bed, names, Math.floor(i / 10) % 2 === 1 ? 30 : 0));
        await sleep(10);
      }
    });
    t.comment(`${UPDATES} updates took ${Date.now() - started} ms`);
    checkLoops(t, stats, 50);
  });
}

t.test('connect-time load balancing', (t) => churn(t, 'tcp+udp', false));
t.test('TC path', (t) => churn(t, 'off', true));
