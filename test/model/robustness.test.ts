// Objects from a manifest file may hold wrong types anywhere. The model must never throw: every
// field of rich, valid objects is replaced in turn by junk (and randomly, with a fixed seed),
// and the result must stay well-formed.
import t, { type Test } from 'tap';
import { computeDesiredState } from '../../src/model/desired-state.js';
import { parseIp } from '../../src/model/ip.js';
import type { ModelResult } from '../../src/model/types.js';
import { ep, input, node, NODE, service, slice, ZONE } from './builders.js';

type Json = unknown;

const JUNK: Json[] = [null, undefined, 0, -1, 1.5, NaN, Infinity, '', 'x', '10.0.0.1', true, [], [null], {}, { a: 1 }, [[['deep']]]];

function richObjects(): { services: Json[]; slices: Json[]; nodes: Json[] } {
  return JSON.parse(
    JSON.stringify({
      services: [
        service('web', {
          type: 'LoadBalancer',
          clusterIPs: ['10.96.0.10', 'fd00:96::10'],
          ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080, targetPort: 8080 }],
          externalIPs: ['198.51.100.1'],
          externalTrafficPolicy: 'Local',
          internalTrafficPolicy: 'Cluster',
          healthCheckNodePort: 32000,
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
          loadBalancerSourceRanges: ['10.0.0.0/8'],
        }, { metadata: { labels: { app: 'web' } }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.1', ipMode: 'VIP' }] } } }),
      ],
      slices: [
        slice('web', [ep('10.0.0.1', { node: NODE, zone: ZONE, ready: true, serving: true, terminating: false, forZones: [ZONE], forNodes: [NODE] })]),
      ],
      nodes: [node(NODE, ['192.168.0.10'], { zone: ZONE, external: ['203.0.113.10'] })],
    }),
  ) as { services: Json[]; slices: Json[]; nodes: Json[] };
}

/** Every path to a value inside `root` (object keys and array indexes). */
function paths(root: Json, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(root)) root.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (root && typeof root === 'object') for (const [k, v] of Object.entries(root)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function setAt(root: Json, path: Array<string | number>, value: Json): Json {
  if (path.length === 0) return value;
  const copy = JSON.parse(JSON.stringify(root)) as Record<string | number, Json>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, Json>;
  at[path[path.length - 1] as string | number] = value;
  return copy;
}

function checkWellFormed(t: Test, result: ModelResult, what: string): void {
  for (const e of result.errors) {
    if (typeof e.kind !== 'string' || typeof e.object !== 'string' || typeof e.field !== 'string' || !e.message.includes(e.kind)) {
      t.fail(`malformed error after ${what}: ${JSON.stringify(e)}`);
    }
  }
  for (const p of result.state.services.values()) {
    for (const f of p.frontends) {
      if (parseIp(f.ip)?.family !== p.family || !(f.port >= 1 && f.port <= 65535)) t.fail(`bad frontend after ${what}`);
    }
    for (const b of [...p.clusterBackends, ...p.localBackends]) {
      if (parseIp(b.ip)?.family !== p.family || !(b.port >= 1 && b.port <= 65535)) t.fail(`bad backend after ${what}`);
    }
  }
}

t.test('every field of every object replaced by every junk value: no throw, well-formed output', async (t) => {
  const base = richObjects();
  let runs = 0;
  for (const list of ['services', 'slices', 'nodes'] as const) {
    for (const path of paths(base[list])) {
      for (const junk of JUNK) {
        const mutated = { ...base, [list]: setAt(base[list], path, junk) };
        const what = `${list}${path.map((p) => `[${JSON.stringify(p)}]`).join('')} = ${String(junk)}`;
        let result: ModelResult | undefined;
        try {
          result = computeDesiredState(input({ services: mutated.services as unknown[], slices: mutated.slices as unknown[], nodes: mutated.nodes as unknown[], config: { families: ['IPv4', 'IPv6'] } }));
        } catch (err) {
          t.fail(`threw after ${what}: ${String(err)}`);
          continue;
        }
        checkWellFormed(t, result, what);
        runs++;
      }
    }
  }
  t.ok(runs > 1000, `${runs} mutated inputs computed`);
});

t.test('random multi-field junk with a fixed seed: no throw', async (t) => {
  let seed = 0x5eed;
  const random = (): number => {
    // mulberry32: deterministic, so a failure reproduces.
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const base = richObjects();
  const all = { services: base.services, slices: base.slices, nodes: base.nodes } as Record<string, Json>;
  const allPaths = (['services', 'slices', 'nodes'] as const).flatMap((list) => paths(base[list]).map((p) => [list, ...p] as Array<string | number>));
  for (let i = 0; i < 300; i++) {
    let mutated: Json = all;
    for (let k = 0; k < 4; k++) {
      const path = allPaths[Math.floor(random() * allPaths.length)] ?? [];
      try {
        mutated = setAt(mutated, path, JUNK[Math.floor(random() * JUNK.length)]);
      } catch {
        // The path vanished under an earlier mutation: skip it.
      }
    }
    const m = mutated as Record<string, unknown[]>;
    const result = computeDesiredState(input({ services: m['services'], slices: m['slices'], nodes: m['nodes'], config: { families: ['IPv4', 'IPv6'] } }));
    checkWellFormed(t, result, `random run ${i}`);
  }
  t.pass('300 random runs');
});

t.test('an object whose getters throw costs that object only', async (t) => {
  const hostile = new Proxy({}, { get: () => { throw new Error('boom'); } });
  const result = computeDesiredState(input({ services: [hostile, service('web')], slices: [hostile, slice('web', [ep('10.0.0.1')])] }));
  t.same([...result.state.services.keys()], ['default/web:http/TCP/IPv4']);
  t.match(result.errors, [
    { kind: 'EndpointSlice', message: /internal model error.*boom/ },
    { kind: 'Service', message: /internal model error.*boom/ },
  ]);
});
