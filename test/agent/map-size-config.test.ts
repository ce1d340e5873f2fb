// --map-size-* / SLUICE_MAP_SIZE_*: whole numbers within bounds, else a ConfigError naming the
// flag (and variable) and the value; each sizes the maps MAP_SIZE_OPTIONS lists, which the
// Datapath accepts as maxEntries.
import t from 'tap';
import { ConfigError, parseConfig, usage } from '../../src/agent/config.js';
import { SIZABLE_MAPS } from '../../src/datapath/datapath.js';
import { MAP_SIZE_OPTIONS, mapSizeFlag, mapSizeFlagOf, maxEntriesOf } from '../../src/dataplane/map-sizes.js';

t.test('unset: the compiled capacities (no maxEntries)', async (t) => {
  const cfg = parseConfig([], {});
  t.same(cfg.mapSizes, {});
  t.same(maxEntriesOf(cfg.mapSizes), {});
});

t.test('flags and environment, flags winning; one option sizes its maps alike', async (t) => {
  const cfg = parseConfig(['--map-size-frontends', '8', '--map-size-conntrack=1048576', '--map-size-service-ids', '300'], {
    SLUICE_MAP_SIZE_FRONTENDS: '1000', SLUICE_MAP_SIZE_BACKENDS: '4096', SLUICE_MAP_SIZE_CONNTRACK6: '2048',
  });
  t.same(cfg.mapSizes, { frontends: 8, backends: 4096, conntrack: 1048576, conntrack6: 2048, 'service-ids': 300 });
  t.same(maxEntriesOf(cfg.mapSizes), {
    sl_frontends4: 8, sl_frontends6: 8, sl_backends4: 4096, sl_backends6: 4096, sl_ct4: 1048576, sl_ct6: 2048, sl_svc_meta: 300, sl_svc_counters: 300,
  }, 'both families of the hash maps, one family per conntrack flag, both svc_id arrays');
});

t.test('every option sizes sizable maps only, each map by one option, and is in --help', async (t) => {
  const seen = new Set<string>();
  for (const o of MAP_SIZE_OPTIONS) {
    for (const m of o.maps) {
      t.ok(SIZABLE_MAPS.includes(m), `${m} is sizable`);
      t.notOk(seen.has(m), `${m} sized by one option`);
      seen.add(m);
      t.equal(mapSizeFlagOf(m), mapSizeFlag(o.name));
    }
    t.match(usage(), new RegExp(`${mapSizeFlag(o.name)} .*\\(default ${o.defaultSize}\\) \\[\\$SLUICE_MAP_SIZE_`));
  }
  t.same([...seen].sort(), [...SIZABLE_MAPS].sort(), 'every sizable map has a flag');
});

const bad: [string[], Record<string, string>, RegExp][] = [
  [['--map-size-frontends', '0'], {}, /^--map-size-frontends: "0" is not a whole number from 1 to 16777216$/],
  [['--map-size-backends', '64k'], {}, /^--map-size-backends: "64k" is not a whole number from 1 to 16777216$/],
  [['--map-size-conntrack', '-5'], {}, /^--map-size-conntrack: "-5" is not a whole number/],
  [['--map-size-conntrack', '16777217'], {}, /"16777217" is not a whole number from 1 to 16777216/],
  [['--map-size-service-ids', '1'], {}, /^--map-size-service-ids: "1" is not a whole number from 2 to 16777216/],
  [['--map-size-affinity', '1.5'], {}, /^--map-size-affinity: "1.5" is not a whole number/],
  [['--map-size-frontends'], {}, /^--map-size-frontends: needs a value/],
  [[], { SLUICE_MAP_SIZE_FRONTENDS: 'lots' }, /^environment SLUICE_MAP_SIZE_FRONTENDS: --map-size-frontends: "lots" is not a whole number/],
  [['--map-size-maglev-chunks', '63'], {}, /^--map-size-maglev-chunks: "63" is below the 64 chunks of one Maglev table \(--maglev-table-size 16381\)/],
  [['--map-size-maglev-chunks', '3', '--maglev-table-size', '1021'], {}, /"3" is below the 4 chunks of one Maglev table \(--maglev-table-size 1021\)/],
];
for (const [argv, env, message] of bad) {
  t.test(`rejects ${JSON.stringify(argv)} ${JSON.stringify(env)}`, async (t) => {
    t.throws(() => parseConfig(argv, env), { name: 'ConfigError', message });
    t.throws(() => parseConfig(argv, env), ConfigError);
  });
}

t.test('a Maglev chunk map that holds one table is accepted', async (t) => {
  t.equal(parseConfig(['--map-size-maglev-chunks', '4', '--maglev-table-size', '1021'], {}).mapSizes['maglev-chunks'], 4);
});
