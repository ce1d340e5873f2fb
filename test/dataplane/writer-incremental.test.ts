// The writer told which service ports changed (apply(state, { changed })) must leave the maps
// describing exactly what a full apply leaves: the same frontends with the same backend sets,
// names and ClusterIPs, and no orphaned block, name or id. Random sequences of desired states
// (endpoint changes, port and address changes, services added and removed, invalid ports,
// shared ClusterIPs) are applied both ways, compared after every step.
import t from 'tap';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import type { DesiredServicePort, DesiredState } from '../../src/model/types.js';
import { backend, svcPort } from './helpers.js';

function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
    return s / 0x80000000;
  };
}

/** What the maps mean, without the ids the two writers may hand out differently. */
function meaning(tables: MemoryServiceTables) {
  const names = new Map(tables.svcMeta.entries().map(([id, m]) => [id, m.name]));
  const blocks = new Map<number, Map<number, string>>();
  for (const [k, v] of tables.backends.entries()) {
    let b = blocks.get(k.backend_id);
    if (!b) blocks.set(k.backend_id, (b = new Map()));
    b.set(k.ordinal, `${v.addr}:${v.port}/${v.flags}`);
  }
  const frontends = tables.frontends.entries().map(([k, v]) => {
    const block = blocks.get(v.backend_id);
    const set = Array.from({ length: v.count + v.local_count }, (_, i) => block?.get(i) ?? 'MISSING');
    return `${k.addr}:${k.port}/${k.proto} -> ${names.get(v.svc_id) ?? 'UNNAMED'} ${v.count}+${v.local_count} f${v.flags} a${v.affinity_timeout_s} [${set.join(' ')}]`;
  }).sort();
  const used = new Set(tables.frontends.entries().map(([, v]) => v.backend_id));
  const orphanBlocks = [...blocks.keys()].filter((id) => !used.has(id));
  const usedIds = new Set(tables.frontends.entries().map(([, v]) => v.svc_id));
  const orphanNames = [...names].filter(([id]) => !usedIds.has(id)).map(([, n]) => n);
  return { frontends, names: [...names.values()].sort(), vips: tables.vips.entries().map(([k]) => k.addr).sort(), orphanBlocks, orphanNames };
}

function randomPort(i: number, random: () => number): DesiredServicePort {
  const pick = (n: number) => Math.floor(random() * n);
  const bes = Array.from({ length: pick(4) }, (_, j) => backend(`10.1.${i}.${(j + pick(3)) % 6}`, 8080 + pick(2)));
  const unique = [...new Map(bes.map((b) => [`${b.ip}:${b.port}`, b])).values()];
  // A few share a ClusterIP (several ports of one Service); some get a NodePort frontend too.
  const vip = `10.96.0.${i % 7}`;
  const frontends = [{ kind: 'ClusterIP' as const, ip: vip, port: 80 + (i % 3) * 100 + pick(2) }];
  if (pick(3) === 0) frontends.push({ kind: 'NodePort' as never, ip: '192.0.2.1', port: 30000 + i });
  const bad = pick(25) === 0; // an invalid port: its programmed state must be kept
  return svcPort({ name: `svc-${i}`, protocol: i % 2 ? 'UDP' : 'TCP', frontends: bad ? [{ kind: 'ClusterIP', ip: '10.96.0.300', port: 80 }] : frontends, backends: unique, affinity: pick(4) === 0 ? 30 : 0 });
}

const changedKeys = (a: DesiredState, b: DesiredState): Set<string> => {
  const out = new Set<string>();
  for (const k of new Set([...a.services.keys(), ...b.services.keys()])) {
    if (JSON.stringify(a.services.get(k)) !== JSON.stringify(b.services.get(k))) out.add(k);
  }
  return out;
};

t.test('apply with a changed-keys hint = full apply, after every step of random sequences', async (t) => {
  for (const seed of [11, 12, 13]) {
    const random = seeded(seed);
    const pick = (n: number) => Math.floor(random() * n);
    const partial = new MemoryServiceTables();
    const full = new MemoryServiceTables();
    const wp = new ServiceTableWriter({ tables: partial });
    const wf = new ServiceTableWriter({ tables: full });
    let state: DesiredState = { services: new Map() };
    for (let i = 0; i < 30; i++) if (pick(3) > 0) { const p = randomPort(i, random); state.services.set(p.key, p); }
    wp.apply(state);
    wf.apply(state);
    let ok = true;
    let steps = 0;
    let hinted = 0;
    for (let step = 0; step < 120 && ok; step++) {
      const next: DesiredState = { services: new Map(state.services) };
      for (let c = 0; c < 1 + pick(3); c++) {
        const i = pick(36);
        const key = `default/svc-${i}:/${i % 2 ? 'UDP' : 'TCP'}/IPv4`;
        if (pick(5) === 0) next.services.delete(key);
        else { const p = randomPort(i, random); next.services.set(p.key, p); }
      }
      const sorted: DesiredState = { services: new Map([...next.services].sort((a, b) => (a[0] < b[0] ? -1 : 1))) };
      const changed = changedKeys(state, sorted);
      const rp = wp.apply(sorted, { changed });
      const rf = wf.apply(sorted);
      if (rp.ops.calls > 0) hinted++;
      const mp = meaning(partial);
      const mf = meaning(full);
      ok = t.same(mp, mf, `seed ${seed} step ${step}: same maps`) && t.same(mp.orphanBlocks, [], 'no orphaned block') && t.same(mp.orphanNames, [], 'no orphaned name');
      // A hinted apply reports what it planned: the full apply's failures among the changed keys.
      ok = t.same(rp.errors.map((e) => e.key), rf.errors.map((e) => e.key).filter((k) => k !== undefined && changed.has(k)), `seed ${seed} step ${step}: failing keys`) && ok;
      state = sorted;
      steps++;
    }
    t.equal(steps, 120, `seed ${seed}: all 120 steps matched`);
    t.ok(hinted > 60, `seed ${seed}: most steps wrote something (${hinted})`);
  }
});

t.test('a hinted apply touches only the changed service\'s elements', async (t) => {
  const tables = new MemoryServiceTables();
  const writer = new ServiceTableWriter({ tables });
  const ports = Array.from({ length: 200 }, (_, i) => svcPort({ name: `s${i}`, vip: `10.96.${i >> 8}.${i & 255}`, backends: [backend(`10.2.0.${i % 250}`)] }));
  const state: DesiredState = { services: new Map(ports.map((p) => [p.key, p])) };
  writer.apply(state);
  const changed = svcPort({ name: 's7', vip: '10.96.0.7', backends: [backend('10.2.0.7'), backend('10.2.1.7')] });
  state.services.set(changed.key, changed);
  tables.resetLog();
  const res = writer.apply(state, { changed: new Set([changed.key]) });
  t.same(res.errors, []);
  t.match(res.services, { updated: 1, unchanged: 199 });
  t.same(res.ops, { writes: 2 + 1, deletes: 1, calls: 3 }, 'new block (2), one frontend, old block (1)');
  t.ok(tables.log.every((op) => op.map !== 'sl_frontends4' || (op.key as { addr: string }).addr === '10.96.0.7'), 'no other frontend touched');
});
