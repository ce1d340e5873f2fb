// The incremental model must give exactly what computeDesiredState gives for the same objects —
// state (content and key order) and errors — after any sequence of changes: endpoint changes,
// port changes, Services and slices added and removed, a slice moving to another Service,
// contested external IPs (conflicts), malformed objects. Checked after every step of random
// sequences; `changed` must name every port whose output differs from the step before.
import t from 'tap';
import type { Test } from 'tap';
import { computeDesiredState } from '../../src/model/desired-state.js';
import { IncrementalModel } from '../../src/model/incremental.js';
import type { ModelConfig, ModelInput, ModelResult } from '../../src/model/types.js';
import { DEFAULT_NODE, node, NODE } from './builders.js';
import { makeService, makeSlice, seeded, type Obj } from './random-cluster.js';

const CONFIG: ModelConfig = { families: ['IPv4', 'IPv6'], nodePortAddresses: [], serviceProxyName: '' };

/** What the store would hand over: objects by key, replaced (never mutated) on change. */
class FakeStore {
  services = new Map<string, Obj>();
  slices = new Map<string, Obj>();
  snapshot() {
    return { services: [...this.services.values()], endpointSlices: [...this.slices.values()], nodes: [node('node-b', ['192.168.0.11']), DEFAULT_NODE] };
  }
}

const key = (o: Obj): string => {
  const m = o['metadata'] as { namespace: string; name: string };
  return `${m.namespace}/${m.name}`;
};

function same(t: Test, got: ModelResult, want: ModelResult, what: string): boolean {
  const g = JSON.stringify({ s: [...got.state.services.entries()], e: got.errors });
  const w = JSON.stringify({ s: [...want.state.services.entries()], e: want.errors });
  return t.ok(g === w, what, g === w ? {} : { gotKeys: [...got.state.services.keys()].length, wantKeys: [...want.state.services.keys()].length, gotErrors: got.errors.length, wantErrors: want.errors.length });
}

t.test('random change sequences: incremental = computeDesiredState after every step', async (t) => {
  for (const seed of [1, 2, 3, 4]) {
    const random = seeded(seed);
    const pick = (n: number) => Math.floor(random() * n);
    const store = new FakeStore();
    const N = 24;
    for (let i = 0; i < N; i++) {
      const svc = makeService(i, pick(11));
      store.services.set(key(svc), svc);
      for (let s = 0; s < 2; s++) {
        const sl = makeSlice(i, s, i, pick(13));
        store.slices.set(key(sl), sl);
      }
    }
    // The pure equivalence: keeping last good versions (tested on its own) is switched off.
    const model = new IncrementalModel({ keepLastGood: false });
    const input = (): ModelInput => ({ ...store.snapshot(), nodeName: NODE, config: CONFIG }) as unknown as ModelInput;
    let previous = computeDesiredState(input());
    const first = model.full(input());
    let ok = same(t, first, previous, `seed ${seed}: full() = computeDesiredState`);
    let steps = 0;
    for (let step = 0; step < 150 && ok; step++) {
      const services = new Set<string>();
      const slices = new Set<string>();
      const changes = 1 + pick(3);
      for (let c = 0; c < changes; c++) {
        const i = pick(N + 4); // a few keys beyond N: added later, or never there
        const what = pick(10);
        if (what < 5) { // an endpoint change
          const sl = makeSlice(i % N, pick(2), i % N, pick(13));
          store.slices.set(key(sl), sl);
          slices.add(key(sl));
        } else if (what < 7) { // a Service changed (ports, IPs, policy, age) or added
          const svc = makeService(i, pick(11));
          store.services.set(key(svc), svc);
          services.add(key(svc));
        } else if (what < 8) { // a Service removed
          const k = `default/svc-${i}`;
          store.services.delete(k);
          services.add(k);
        } else if (what < 9) { // a slice moves to another Service
          const sl = makeSlice(i % N, pick(2), pick(N), pick(13));
          store.slices.set(key(sl), sl);
          slices.add(key(sl));
        } else { // a slice removed
          const k = `default/slice-${i % N}-${pick(2)}`;
          store.slices.delete(k);
          slices.add(k);
        }
      }
      const got = model.update({
        services, endpointSlices: slices,
        service: (k) => store.services.get(k), endpointSlice: (k) => store.slices.get(k),
      });
      const want = computeDesiredState(input());
      ok = same(t, got, want, `seed ${seed} step ${step}: update() = computeDesiredState`);
      // Every port whose output differs from the step before is reported as changed.
      const differs = new Set<string>();
      for (const k of new Set([...previous.state.services.keys(), ...want.state.services.keys()])) {
        if (JSON.stringify(previous.state.services.get(k)) !== JSON.stringify(want.state.services.get(k))) differs.add(k);
      }
      const missed = [...differs].filter((k) => !got.changed.has(k));
      if (missed.length > 0) ok = t.same(missed, [], `seed ${seed} step ${step}: changed names every differing port`);
      previous = want;
      steps++;
    }
    t.equal(steps, 150, `seed ${seed}: all 150 steps matched`);
  }
});

t.test('an endpoint change recomputes one Service and keeps every other port object', async (t) => {
  const store = new FakeStore();
  for (let i = 0; i < 50; i++) {
    const svc = makeService(i, 3);
    store.services.set(key(svc), svc);
    const sl = makeSlice(i, 0, i, 1);
    store.slices.set(key(sl), sl);
  }
  const model = new IncrementalModel();
  const before = new Map(model.full({ ...store.snapshot(), nodeName: NODE, config: CONFIG } as unknown as ModelInput).state.services);
  const sl = makeSlice(7, 0, 7, 2);
  store.slices.set(key(sl), sl);
  const res = model.update({ services: [], endpointSlices: [key(sl)], service: (k) => store.services.get(k), endpointSlice: (k) => store.slices.get(k) });
  t.same([...res.changed].sort(), ['default/svc-7:dns/UDP/IPv4', 'default/svc-7:http/TCP/IPv4'], 'only svc-7\'s ports changed');
  let kept = 0;
  for (const [k, port] of res.state.services) if (!k.startsWith('default/svc-7:') && before.get(k) === port) kept++;
  t.equal(kept, before.size - 2, 'every other port is the same object as before');
});

t.test('update() before full() is a programming error', async (t) => {
  t.throws(() => new IncrementalModel().update({ services: [], endpointSlices: [], service: () => undefined, endpointSlice: () => undefined }), /before full/);
});
