// The UDP socket sweep for IPv6 sockets (bpf/sockdestroy.bpf.c), with real sockets under
// connect-time balancing: a connected IPv6 UDP socket keeps the backend connect6 gave it in the
// kernel, so when that backend leaves its service the writer's sweep must close it. The same holds
// for a dual-stack IPv6 socket connected to an IPv4-mapped VIP (::ffff:a.b.c.d), whose entry is
// in the IPv4 maps. The removed backends' servers keep running: a socket left alone would still
// be answered by them (udp-failover.test.ts has the IPv4 negative control). Sockets on backends
// that stay are left alone.
import t from 'tap';
import type { Test } from 'tap';
import { Datapath } from '../../src/datapath/datapath.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { netnsPath } from '../../src/testbed/netns.js';
import type { Bed } from './bed.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP6 = 'fd00:96::40';
const VIP4 = '10.96.0.40';
const MAPPED = `::ffff:${VIP4}`;
const PORT = 53;
const BACKEND_PORT = 5353;
const BACKENDS = ['be0', 'be1', 'be2'];

function services(bed: Bed, names6: string[], names4: string[]) {
  return desiredState(
    clusterIpService({ name: 'dns', family: 'IPv6', vip: VIP6, port: PORT, protocol: 'UDP', backends: names6.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6')) }),
    clusterIpService({ name: 'dns', vip: VIP4, port: PORT, protocol: 'UDP', backends: names4.map((n) => backendOf(bed.pod(n), BACKEND_PORT)) }),
  );
}

function oneBackend(t: Test, results: Attempt[], from: string, what: string): string | undefined {
  t.same(results.filter((a) => !a.ok), [], `${what}: every datagram answered`);
  t.equal(new Set(results.map((a) => a.backend)).size, 1, `${what}: one backend`);
  for (const a of results) t.equal(a.from, from, `${what}: reply from the VIP`);
  return results[0]?.backend;
}

const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'tcp+udp', tc: false, ipv6: true });
if (bed) {
  await t.test('connected IPv6 and IPv4-mapped UDP sockets of a removed backend are closed by the sweep', async (t) => {
    const namespaces = [bed.topo.nodeNs, ...bed.topo.pods.map((p) => p.ns)].map(netnsPath);
    const datapath = await Datapath.load({ pinDir: bed.pinDir, connectTimeLb: 'tcp-udp', udpSocketSweep: { namespaces: () => namespaces } });
    t.teardown(() => datapath.close());
    if (!datapath.udpSocketSweep) {
      const why = 'this kernel cannot destroy sockets from BPF (bpf_sock_destroy, Linux >= 6.5)';
      if (process.env.CI === 'true') t.fail(why);
      else t.plan(0, why);
      return;
    }
    const writer = new ServiceTableWriter({ tables: datapath.tables, tables6: datapath.tables6, udpSocketSweep: datapath.udpSocketSweep });
    const apply = (d: ReturnType<typeof services>) => t.same(writer.apply(d).errors, [], 'written without errors');
    await bed.startBackends(BACKENDS, BACKEND_PORT, '::');
    apply(services(bed, BACKENDS, BACKENDS));

    const v6 = { host: VIP6, port: PORT, timeoutMs: 2000 };
    const mapped = { host: MAPPED, port: PORT, timeoutMs: 2000 };
    const first6 = oneBackend(t, await bed.client.udp(v6, 3, { socket: 'old6', connected: true }), `${VIP6}:${PORT}`, 'IPv6 socket');
    const first4 = oneBackend(t, await bed.client.udp(mapped, 3, { socket: 'old4', connected: true }), `${MAPPED}:${PORT}`, 'IPv4-mapped socket');
    // An IPv6 socket on a backend that stays.
    let keep: string | undefined;
    let kept: Attempt | undefined;
    for (let i = 0; i < 20 && !keep; i++) {
      const [a] = await bed.client.udp(v6, 1, { socket: `keep${i}`, connected: true });
      if (a?.ok && a.backend !== first6) [keep, kept] = [`keep${i}`, a];
      else await bed.client.closeUdp(`keep${i}`);
    }
    t.ok(keep, 'a second IPv6 socket landed on another backend');

    apply(services(bed, BACKENDS.filter((n) => n !== first6), BACKENDS.filter((n) => n !== first4)));
    t.ok((datapath.udpSocketSweeper?.stats().sweeps ?? 0) >= 1, 'the writer ran the sweep');

    for (const [socket, target, what] of [['old6', v6, 'IPv6'], ['old4', mapped, 'IPv4-mapped']] as const) {
      const [stale] = await bed.client.udp(target, 1, { socket, connected: true });
      t.notOk(stale?.ok, `${what}: the old socket no longer reaches the removed backend: ${JSON.stringify(stale)}`);
      t.not(stale?.code, 'ETIMEDOUT', `${what}: it fails with an error, not a silent timeout`);
      t.equal(stale?.remote, undefined, `${what}: the kernel disconnected it (getpeername fails)`);
      await bed.client.closeUdp(socket);
    }
    if (keep) {
      const after = await bed.client.udp(v6, 3, { socket: keep, connected: true });
      t.same(after.map((a) => [a.ok, a.backend]), Array(3).fill([true, kept?.backend]), `a socket on a backend that stays (${kept?.backend}) is left alone`);
      await bed.client.closeUdp(keep);
    }
    const fresh6 = oneBackend(t, await bed.client.udp(v6, 2, { socket: 'new6', connected: true }), `${VIP6}:${PORT}`, 'a new IPv6 socket');
    t.ok(fresh6 && fresh6 !== first6, `the new IPv6 socket landed on a live backend (${fresh6}, removed ${first6})`);
    const fresh4 = oneBackend(t, await bed.client.udp(mapped, 2, { socket: 'new4', connected: true }), `${MAPPED}:${PORT}`, 'a new IPv4-mapped socket');
    t.ok(fresh4 && fresh4 !== first4, `the new IPv4-mapped socket landed on a live backend (${fresh4}, removed ${first4})`);
  });
}
