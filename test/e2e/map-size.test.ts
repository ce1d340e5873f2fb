// Issue 17, map sizes, against a running agent on real maps: --map-size-frontends 8 with ten
// Services. The two that do not fit get an error naming them, the map, its capacity and the
// flag (sluicectl status, the log), sluice_map_full_errors_total counts it, the other eight are
// programmed and served, and the agent is ready (/readyz); once two Services go, the left-out ones are programmed by a later
// sync. Restarts over the pinned maps: a larger size carries every entry into the new map (the
// first apply writes nothing); a size below what the map holds is refused naming the flag, the
// pinned size and the asked one, and the dataplane in place keeps serving unchanged.
import { join } from 'node:path';
import t from 'tap';
import { parsePrometheus, sampleValue } from '../metrics/prom-parse.js';
import { createAgentBed, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';
import type { LogLine } from './agent-bed.js';
import { bpftoolShow, poll, scrape } from './ops-helpers.js';

const ADDRESS = '127.0.0.1:9963';
const HTTP = [{ name: 'http', port: 80 }];
const NAMES = Array.from({ length: 10 }, (_, i) => `s${i}`);
const vipOf = (name: string) => `10.96.7.${10 + NAMES.indexOf(name)}`;
const manifest = (name: string) => [service(name, vipOf(name), HTTP), slice(`${name}-1`, name, ['web-a'], HTTP)];
const FULL = /sl_frontends4 is full \(capacity 8; --map-size-frontends\)/;
const isApplied = (l: LogLine) => l.msg === 'applied' && l.component === 'reconciler';

t.test('a full frontend map, then restarts with another size', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests' });
  if (!bed) return;
  await bed.writeManifest('node.yaml', [nodeObject()]);
  for (const name of NAMES) await bed.writeManifest(`${name}.yaml`, manifest(name));
  const agent = bed.startAgent(['--map-size-frontends', '8', '--metrics-address', ADDRESS]);
  const metric = async (name: string, labels: Record<string, string>): Promise<number | undefined> => {
    const [m] = await scrape(bed.topo.nodeNs, ADDRESS, ['/metrics']);
    if (m?.status !== 200) return undefined;
    return sampleValue(parsePrometheus(m.body), name, labels);
  };

  let leftOut: string[] = [];
  await t.test('ten Services, room for eight: errors name the two left out; the eight are programmed and served', async (t) => {
    const status = await bed.waitFor('two full-map errors in sluicectl status', async () => {
      const s = await bed.status();
      const full = s.errors.filter((e) => FULL.test(e.message));
      return new Set(full.map((e) => e.object)).size >= 2 ? s : undefined;
    }, 60_000);
    t.equal(status.sync.state, 'error', 'the sync state says error');
    const full = status.errors.filter((e) => FULL.test(e.message));
    leftOut = [...new Set(full.map((e) => e.object as string))].sort();
    t.equal(leftOut.length, 2, `two service ports left out: ${leftOut.join(', ')}`);
    for (const e of full) t.match(e.message, /^service port e2e\/s\d:http\/TCP\/IPv4: sl_frontends4 is full \(capacity 8; --map-size-frontends\): switching a frontend failed .*retried/);
    const svcs = await bed.services();
    t.equal(svcs.filter((s) => s.frontends.length > 0).length, 8, 'eight service ports have their frontend');
    t.notOk(svcs.some((s) => leftOut.includes(s.key) && s.frontends.length > 0), 'the left-out ones have none');
    t.ok(agent.find((l) => FULL.test(String(l.msg))).length > 0, 'and the log says it');
    const served = NAMES.find((n) => !leftOut.includes(portKey(n, 'http'))) as string;
    expectServed(t, await bed.traffic('tc', vipOf(served), 80, 3), ['web-a'], `${served}, programmed, is served`);
    const counted = await poll('sluice_map_full_errors_total{map="sl_frontends4"}', async () => ((await metric('sluice_map_full_errors_total', { map: 'sl_frontends4' })) ?? 0) >= 2 || undefined);
    t.ok(counted, 'the full-map metric counts them');
    t.equal(await metric('sluice_map_capacity', { map: 'sl_frontends4' }), 8, 'sluice_map_capacity shows the flag\'s size');
    t.equal(agent.running, true, 'the agent keeps running');
    const [ready] = await scrape(bed.topo.nodeNs, ADDRESS, ['/readyz']);
    t.equal(ready?.status, 200, '/readyz: ready, everything that fits is programmed (the startup probe does not restart it)');
  });

  await t.test('two other Services go: a later sync programs the left-out ones', async (t) => {
    const gone = NAMES.filter((n) => !leftOut.includes(portKey(n, 'http'))).slice(0, 2);
    for (const name of gone) await bed.removeManifest(`${name}.yaml`);
    const svcs = await bed.waitForServices('the left-out ports programmed', (list) => leftOut.every((k) => list.some((s) => s.key === k && s.frontends.length > 0)), 30_000);
    t.equal(svcs.filter((s) => s.frontends.length > 0).length, 8, 'eight again, the left-out two among them');
    await bed.waitForSynced();
    const leftName = NAMES.find((n) => portKey(n, 'http') === leftOut[0]) as string;
    expectServed(t, await bed.traffic('tc', vipOf(leftName), 80, 3), ['web-a'], `${leftName} is served now`);
  });

  const frontendsPin = join(bed.pinDir, 'sl_frontends4');
  await t.test('restart with a larger size: entries carried into the new map, nothing rewritten', async (t) => {
    const before = await bed.services();
    await agent.kill('SIGTERM');
    const bigger = bed.startAgent(['--map-size-frontends', '16']);
    await bed.waitForSynced();
    const carried = bigger.find((l) => l.msg === 'carried a pinned map over to its new layout' && l.map === 'sl_frontends4')[0];
    t.match(carried, { carried: 8, notCarried: 0, reasons: ['maxEntries 8 -> 16'] }, 'the eight frontends carried');
    t.equal((await bpftoolShow(frontendsPin)).max_entries, 16, 'the pinned map has the new size');
    const applied = await bigger.waitForLog(isApplied, 'the first apply');
    t.match(applied, { ops: { writes: 0, deletes: 0 }, services: { unchanged: 8 } }, 'the first apply over the carried maps writes nothing');
    t.same((await bed.services()).map((s) => [s.key, s.svcId, s.backendId]), before.map((s) => [s.key, s.svcId, s.backendId]), 'same ids');
    await bigger.kill('SIGTERM');
  });

  await t.test('restart with a size below what the map holds: refused, the dataplane unchanged', async (t) => {
    const pinnedBefore = await bpftoolShow(frontendsPin);
    const smaller = bed.startAgent(['--map-size-frontends', '4']);
    const exit = await smaller.exited;
    t.equal(exit.code, 1, 'the agent exits 1');
    const said = [...smaller.logs.map((l) => String(l.msg)), smaller.stderr].join('\n');
    t.match(said, /--map-size-frontends 4: the pinned sl_frontends4 \(size 16\) holds 8 entries, more than 4 can take: refused, nothing changed/, 'the error names the flag, the pinned size and the asked one');
    t.same(await bpftoolShow(frontendsPin), pinnedBefore, 'the same pinned map, its size unchanged');
    expectServed(t, await bed.traffic('tc', vipOf(NAMES[9] as string), 80, 3), ['web-a'], 'still served without an agent');
  });
});
