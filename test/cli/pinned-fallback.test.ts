// sluicectl with the agent down, on REAL pinned maps: the maps are created in a per-run bpffs
// directory from the dataplane fixture (bpf/test/dataplane_maps.bpf.c, exactly bpf/lib/maps.h),
// filled with the test scenario, and read back by sluicectl through the addon. The answers must
// equal what the same scenario gives in memory, and sluicectl must say the agent is down.
import t from 'tap';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MapsAdminBackend } from '../../src/admin/maps-backend.js';
import { fromPackageRoot, loadNative } from '../../src/bpf/native.js';
import { encodePerCpu } from '../../src/bpf/codec.js';
import { u32Key, u64Value } from '../../src/bpf/sluice-structs.js';
import { IPV6_UNTRANSLATED_MAP } from '../../src/dataplane/ipv6-untranslated.js';
import { openPinnedTables } from '../../src/dataplane/native-tables.js';
import { TABLE_ROLES } from '../../src/dataplane/tables.js';
import type { ServiceTables, Table } from '../../src/dataplane/tables.js';
import { runSluicectl } from '../../src/cli/sluicectl.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { scenarioTables } from '../admin/fake-tables.js';
import { tempDir } from '../admin/helpers.js';
import { requirePrivileges } from '../helpers/privileges.js';
import { parseTable } from './table-parse.js';

const FIXTURE = fromPackageRoot('dist', 'bpf', 'test', 'dataplane_maps.bpf.o');

/** Per-CPU values of the 4-CPU scenario folded onto this machine's CPUs (sums unchanged). */
function fold<T>(values: T[], cpus: number, add: (a: T, b: T) => T, zero: T): T[] {
  const out = Array.from({ length: cpus }, () => zero);
  values.forEach((v, i) => (out[i % cpus] = add(out[i % cpus] as T, v)));
  return out;
}

function copyScenario(from: ServiceTables, to: ServiceTables, cpus: number): void {
  for (const role of TABLE_ROLES) {
    const src = from[role] as Table<unknown, unknown>;
    const dst = to[role] as Table<unknown, unknown>;
    for (const [k, v] of src.entries()) {
      if (role === 'counters') {
        const add = (a: Record<string, bigint>, b: Record<string, bigint>) =>
          Object.fromEntries(Object.keys(a).map((f) => [f, (a[f] ?? 0n) + (b[f] ?? 0n)]));
        dst.set(k, fold(v as Record<string, bigint>[], cpus, add, { packets: 0n, bytes: 0n, connections: 0n, rejected: 0n }));
      } else if (role === 'dropCounters') {
        dst.set(k, fold(v as bigint[], cpus, (a, b) => a + b, 0n));
      } else dst.set(k, v);
    }
  }
}

t.test('agent down: sluicectl reads the real pinned maps read-only and says so', async (t) => {
  if (!(await requirePrivileges(t))) return;
  t.ok(existsSync(FIXTURE), `${FIXTURE} exists (npm run build:bpf)`);
  if (!existsSync(FIXTURE)) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const pinDir = await run.pinDir();
  const native = loadNative();
  const obj = native.openObject(FIXTURE, { pinRoot: pinDir });
  await obj.load();
  obj.close(); // the maps stay, pinned by name, as the agent leaves them on exit

  const now = process.hrtime.bigint();
  const scenario = scenarioTables(now);
  const pinned = openPinnedTables(native, pinDir);
  t.teardown(() => pinned.close());
  copyScenario(scenario, pinned.tables, native.numPossibleCpus());
  // IPv6 packets passed untranslated (extension headers): 7 over the CPUs, read back summed.
  const untranslated = native.openPinnedMap(join(pinDir, IPV6_UNTRANSLATED_MAP));
  untranslated.update(u32Key.encode(0), encodePerCpu(u64Value, fold([3n, 4n], native.numPossibleCpus(), (a, b) => a + b, 0n)));
  untranslated.close();

  const missingSocket = join(tempDir(t), 'admin.sock');
  const ctl = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await runSluicectl([...argv, '--socket', missingSocket, '--pin-dir', pinDir], {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      env: {},
    });
    return { code, out, err };
  };
  const expected = new MapsAdminBackend({ tables: scenario, pinDir, nowNs: () => now, ipv6Untranslated: () => 7 });

  const services = await ctl(['services', '-o', 'json']);
  t.equal(services.code, 0, services.err);
  t.match(services.err, `agent is not running: no admin socket at ${missingSocket}`);
  t.match(services.err, `agent is not running; showing pinned maps read-only from ${pinDir}`);
  t.same(JSON.parse(services.out), expected.services());

  const nat = await ctl(['nat', 'dump', '-o', 'json']);
  t.same(JSON.parse(nat.out), expected.natDump());
  const counters = await ctl(['counters', '-o', 'json']);
  t.same(JSON.parse(counters.out), expected.counters(), 'per-CPU sums match');

  // Ages come from the kernel clock: at least what the scenario set, not much more.
  const ct = JSON.parse((await ctl(['ct', 'dump', '--client', '10.244.1.20', '-o', 'json'])).out) as {
    total: number; entries: { direction: string; service: string; backend: { ip: string; port: number }; ageSec: number; state: string }[];
  };
  t.equal(ct.total, 3);
  t.same(ct.entries.map((e) => [e.direction, e.service, `${e.backend.ip}:${e.backend.port}`, e.state]), [
    ['forward', 'default/web:http/TCP/IPv4', '10.244.2.7:8080', 'ESTABLISHED'],
    ['reverse', 'default/web:http/TCP/IPv4', '10.244.2.7:8080', 'ESTABLISHED'],
  ]);
  for (const e of ct.entries) t.ok(e.ageSec >= 30 && e.ageSec < 90, `age ${e.ageSec}`);

  const aff = JSON.parse((await ctl(['aff', 'dump', '-o', 'json'])).out) as { entries: { client: string; idleSec: number; expired: boolean }[] };
  t.same(aff.entries.map((e) => [e.client, e.expired]), [['10.244.1.20', false], ['10.244.1.99', true]]);
  t.ok(aff.entries.every((e) => e.idleSec >= 20 && e.idleSec < 90), 'idle times from the kernel clock');

  const maps = parseTable((await ctl(['maps'])).out).rows;
  const byName = Object.fromEntries(maps.map((r) => [r.NAME, r]));
  t.match(byName.sl_ct4, { TYPE: 'lru_hash', ENTRIES: '3', MAX_ENTRIES: '524288' });
  t.match(byName.sl_frontends4, { ENTRIES: '3', MAX_ENTRIES: '65536' });
  t.match(byName.sl_drop_counters, { TYPE: 'percpu_array', MAX_ENTRIES: '16' });

  const status = await ctl(['status']);
  t.match(status.out, /^agentRunning: +no$/m);
  t.match(status.out, new RegExp(`^pinDir: +${pinDir}$`, 'm'));

  const flush = await ctl(['ct', 'flush', '--service', 'default/web']);
  t.equal(flush.code, 1);
  t.match(flush.err, /needs a running agent \(pinned maps are read-only here\)/);
  t.equal(pinned.tables.ct.entries().length, 3, 'nothing was flushed');

  // The fallback's handles are read-only in the kernel, not by convention: a write through them
  // fails, and the maps are unchanged.
  const { openPinnedMapsForDump } = await import('../../src/admin/map-reader.js');
  const ro = openPinnedMapsForDump(loadNative(), pinDir);
  t.teardown(() => ro.close());
  const [firstKey] = ro.tables.ct.entries()[0] ?? [];
  t.ok(firstKey, 'the read-only view reads the conntrack entries');
  t.throws(() => ro.tables.ct.delete(firstKey!), { code: 'EPERM' }, 'a delete through the read-only handle: EPERM');
  t.throws(() => ro.tables.svcMeta.set(1, { name: 'x' }), { code: 'EPERM' }, 'a write: EPERM');
  t.equal(pinned.tables.ct.entries().length, 3, 'still unchanged');
});
