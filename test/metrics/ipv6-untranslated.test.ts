// sl_ipv6_untranslated as a metric and in sluicectl: IPv6 packets whose extension headers stop
// the translation (a fragment, a routing header with segments left, ESP) are run through the real
// tc.bpf.o (BPF_PROG_TEST_RUN; they pass untouched and are counted), then read
// the way the agent wires it (MapsAdminBackend's counters view -> /metrics'
// sluice_ipv6_untranslated_packets_total) and the way sluicectl reads the pinned maps with the
// agent down (`counters`, JSON and table). A translated packet is not counted (one behind a
// hop-by-hop header included), nor multicast
// (MLD reports carry a hop-by-hop header).
import t from 'tap';
import { join } from 'node:path';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { openPinnedMapsForDump } from '../../src/admin/map-reader.js';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { runSluicectl } from '../../src/cli/sluicectl.js';
import { IPV6_UNTRANSLATED_MAP, readIpv6Untranslated } from '../../src/dataplane/ipv6-untranslated.js';
import { openPinnedTables } from '../../src/dataplane/native-tables.js';
import { collectFromDataplane, SluiceMetrics } from '../../src/metrics/sluice-metrics.js';
import { buildFrame6, espHeader, fragmentHeader, NEXTHDR, parseFrame6, routingHeader, TCP6_FLAGS } from '../../src/packet/index.js';
import { tempDir } from '../admin/helpers.js';
import { parseTable } from '../cli/table-parse.js';
import { loadDatapath, PROG, TC_ACT } from '../datapath/harness.js';
import { addService6 } from '../datapath/harness6.js';
import { parsePrometheus, sampleValue } from './prom-parse.js';

const CLIENT = 'fd00:10:244::a';
const VIP = 'fd00:96::10';
const BACKEND = { addr: 'fd00:10:244::1f', port: 8080 };

t.test('IPv6 packets passed untranslated: counted by the program, shown by /metrics and sluicectl', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, { vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 5, backendId: 50, cluster: [BACKEND] });
  const cpus = dp.addon.numPossibleCpus();
  // The agent's wiring (src/agent/agent.ts): its tables over the pinned maps, the counter read
  // from the loaded object's map.
  const pinned = openPinnedTables(dp.addon, dp.pinDir);
  t.teardown(() => pinned.close());
  const agentSide = new MapsAdminBackend({ tables: pinned.tables, pinDir: dp.pinDir, ipv6Untranslated: () => readIpv6Untranslated(dp.obj.map(IPV6_UNTRANSLATED_MAP), cpus) });
  const metrics = new SluiceMetrics();
  collectFromDataplane(metrics, { counters: () => agentSide.counters(), maps: () => ({ maps: [] }) });
  const scrape = async (): Promise<number | undefined> => {
    t.same(await metrics.registry.collect(), [], 'the scrape-time collectors ran without error');
    return sampleValue(parsePrometheus(metrics.registry.expose()), 'sluice_ipv6_untranslated_packets_total');
  };

  t.equal(agentSide.counters().ipv6Untranslated, 0, 'nothing passed untranslated yet');
  t.equal(await scrape(), 0, 'the metric starts at 0');

  // A clean SYN is translated (DNAT to the backend) and not counted.
  const clean = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, tcp: { sport: 40000, dport: 80, flags: TCP6_FLAGS.SYN } }));
  t.equal(parseFrame6(clean.data).dst, BACKEND.addr, 'a packet without extension headers is translated');
  // So is one behind a hop-by-hop header (walked, lib/parse6.h).
  const hbh = dp.run(PROG.FROM_POD, buildFrame6({ src: CLIENT, dst: VIP, extensions: [NEXTHDR.HOP_BY_HOP], tcp: { sport: 40010, dport: 80, flags: TCP6_FLAGS.SYN } }));
  t.equal(parseFrame6(hbh.data).dst, BACKEND.addr, 'a packet behind a hop-by-hop header is translated');
  // Three whose extension headers stop the translation pass untouched and are counted.
  const exts = [['fragment', fragmentHeader(0, true)], ['routing, segments left 1', routingHeader(1, [VIP, 'fd00:1::1'])], ['ESP', espHeader()]] as const;
  for (const [i, [what, e]] of exts.entries()) {
    const frame = buildFrame6({ src: CLIENT, dst: VIP, extensions: [e], tcp: { sport: 40001 + i, dport: 80, flags: TCP6_FLAGS.SYN } });
    const r = dp.run(PROG.FROM_POD, frame);
    t.equal(r.retval, TC_ACT.UNSPEC, `${what}: TC_ACT_UNSPEC`);
    t.same(r.data, frame, `${what}: passed untouched`);
  }

  // An MLDv2 report (ICMPv6 behind a hop-by-hop header, to ff02::16), as every pod's kernel sends
  // when it joins a group: multicast is never translated, so it is not counted (it would be noise).
  const mld = buildFrame6({ src: 'fe80::1', dst: 'ff02::16', hopLimit: 1, extensions: [NEXTHDR.HOP_BY_HOP], icmp6: { type: 143, code: 0 }, payload: Buffer.alloc(4) });
  for (const prog of [PROG.FROM_POD, PROG.TO_POD]) t.same(dp.run(prog, mld).data, mld, `an MLD report (${prog}) passes untouched`);

  t.equal(agentSide.counters().ipv6Untranslated, 3, 'the counters view sums the per-CPU slot (the MLD reports not counted)');
  t.equal(await scrape(), 3, 'sluice_ipv6_untranslated_packets_total follows at the next scrape');

  // Agent down: sluicectl reads the pinned map read-only.
  const dump = openPinnedMapsForDump(dp.addon, dp.pinDir);
  t.teardown(() => dump.close());
  t.equal(dump.ipv6Untranslated?.(), 3, 'the pinned-map reader exposes it');
  const ctl = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runSluicectl([...argv, '--socket', join(tempDir(t), 'none.sock'), '--pin-dir', dp.pinDir], {
      stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {},
    });
    t.equal(code, 0, `sluicectl ${argv.join(' ')}: ${err}`);
    return out;
  };
  t.equal((JSON.parse(await ctl(['counters', '-o', 'json'])) as { ipv6Untranslated?: number }).ipv6Untranslated, 3, 'sluicectl counters -o json');
  const table = await ctl(['counters']);
  const section = table.slice(table.indexOf('UNTRANSLATED\n') + 'UNTRANSLATED\n'.length);
  t.ok(table.includes('UNTRANSLATED\n'), `an UNTRANSLATED section:\n${table}`);
  t.same(parseTable(section).rows, [{ REASON: 'ipv6-extension-headers', PACKETS: '3' }], 'sluicectl counters: one row with the count');
});
