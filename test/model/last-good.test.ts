// A bad update never wipes what is programmed: when a new version of a Service or EndpointSlice
// has errors of its own, the incremental model keeps the last version without errors, reports
// the new version's errors and a note — through updates and through full() (relists) alike — and
// takes the next clean version as usual. Removal removes; a never-good object is programmed as
// far as it can be.
import t from 'tap';
import { IncrementalModel } from '../../src/model/incremental.js';
import type { ModelInput, ModelResult } from '../../src/model/types.js';
import { DEFAULT_NODE, ep, NODE, service, slice } from './builders.js';

const KEY = 'default/web:http/TCP/IPv4';
type Obj = Record<string, unknown>;

class Objects {
  services = new Map<string, Obj>();
  slices = new Map<string, Obj>();
  input(): ModelInput {
    return { services: [...this.services.values()], endpointSlices: [...this.slices.values()], nodes: [DEFAULT_NODE], nodeName: NODE, config: { families: ['IPv4'], nodePortAddresses: [], serviceProxyName: '' } } as unknown as ModelInput;
  }
}

function harness() {
  const objs = new Objects();
  const model = new IncrementalModel();
  const set = (kind: 'services' | 'slices', key: string, obj: Obj | undefined): ModelResult => {
    if (obj) objs[kind].set(key, obj);
    else objs[kind].delete(key);
    return model.update({
      services: kind === 'services' ? [key] : [], endpointSlices: kind === 'slices' ? [key] : [],
      service: (k) => objs.services.get(k), endpointSlice: (k) => objs.slices.get(k),
    });
  };
  objs.services.set('default/web', service('web', { clusterIP: '10.96.0.10' }) as unknown as Obj);
  objs.slices.set('default/web-abc', slice('web', [ep('10.1.0.1', { ready: true })]) as unknown as Obj);
  const first = model.full(objs.input());
  return { objs, model, set, first };
}
const port = (r: ModelResult) => r.state.services.get(KEY);
const ips = (r: ModelResult) => port(r)?.clusterBackends.map((b) => b.ip);

t.test('a Service update with a bad cluster IP keeps the programmed version', async (t) => {
  const { set, first, model, objs } = harness();
  t.same(port(first)?.frontends.map((f) => f.ip), ['10.96.0.10']);
  const bad = set('services', 'default/web', service('web', { clusterIP: '10.96.0.999', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }) as unknown as Obj);
  t.same(port(bad)?.frontends.map((f) => `${f.ip}:${f.port}`), ['10.96.0.10:80'], 'the last good version stays programmed');
  t.ok(bad.errors.some((e) => e.object === 'default/web' && /10\.96\.0\.999/.test(e.message)), 'the bad value is reported, named');
  t.ok(bad.errors.some((e) => /last version without errors stays programmed/.test(e.message)), 'with a note that the old version stays');

  const relist = model.full(objs.input());
  t.same(port(relist)?.frontends.map((f) => `${f.ip}:${f.port}`), ['10.96.0.10:80'], 'a relist (full) keeps it too');
  t.ok(relist.errors.some((e) => /stays programmed/.test(e.message)));

  const fixed = set('services', 'default/web', service('web', { clusterIP: '10.96.0.11', ports: [{ name: 'http', port: 8080, protocol: 'TCP' }] }) as unknown as Obj);
  t.same(port(fixed)?.frontends.map((f) => `${f.ip}:${f.port}`), ['10.96.0.11:8080'], 'the next clean version applies');
  t.same(fixed.errors, [], 'and the errors are gone');
});

t.test('an EndpointSlice update with a malformed endpoint keeps the programmed endpoints', async (t) => {
  const { set } = harness();
  const bad = set('slices', 'default/web-abc', slice('web', [ep('10.1.0.2', { ready: true }), ep('10.1.0.999')]) as unknown as Obj);
  t.same(ips(bad), ['10.1.0.1'], 'the last good slice stays (not the half-good new one)');
  t.ok(bad.errors.some((e) => e.kind === 'EndpointSlice' && /10\.1\.0\.999/.test(e.message)));
  const good = set('slices', 'default/web-abc', slice('web', [ep('10.1.0.2', { ready: true })]) as unknown as Obj);
  t.same(ips(good), ['10.1.0.2']);
});

t.test('removal removes, and a never-good object is programmed as far as it can be', async (t) => {
  const { set } = harness();
  set('services', 'default/web', service('web', { clusterIP: 'nope' }) as unknown as Obj);
  t.notOk(port(set('services', 'default/web', undefined)), 'a removed Service goes, whatever its last update');
  const fresh = set('services', 'default/web', service('web', { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: 80, protocol: 'TCP' }, { name: 'bad', port: 0 }] }) as unknown as Obj);
  t.ok(port(fresh), 'added again after removal with one bad port: the good port is programmed');
  t.ok(fresh.errors.some((e) => e.field.startsWith('spec.ports[1]')), 'the bad port reported');
  t.notOk(fresh.errors.some((e) => /stays programmed/.test(e.message)), 'no last good version to keep: no note');
});

t.test('keepLastGood: false programs every version as computeDesiredState would', async (t) => {
  const objs = new Objects();
  objs.services.set('default/web', service('web', { clusterIP: '10.96.0.10' }) as unknown as Obj);
  const model = new IncrementalModel({ keepLastGood: false });
  model.full(objs.input());
  objs.services.set('default/web', service('web', { clusterIP: 'nope' }) as unknown as Obj);
  const r = model.update({ services: ['default/web'], endpointSlices: [], service: (k) => objs.services.get(k), endpointSlice: () => undefined });
  t.notOk(port(r), 'the bad version replaced the good one');
});
