// KUBE-PROXY-SEMANTICS "Which objects": which Services this proxy programs at all.
import t from 'tap';
import { compute, ep, keys, service, slice } from './builders.js';

const PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
const HEADLESS = 'service.kubernetes.io/headless';

interface Case {
  name: string;
  spec?: Record<string, unknown>;
  labels?: Record<string, string>;
  serviceProxyName?: string;
  programmed: boolean;
}

const cases: Case[] = [
  { name: 'plain ClusterIP Service is programmed', programmed: true },
  { name: 'type omitted means ClusterIP', spec: { type: undefined }, programmed: true },
  { name: 'clusterIP None (headless) is skipped', spec: { clusterIP: 'None' }, programmed: false },
  { name: 'clusterIPs [None] is skipped', spec: { clusterIP: undefined, clusterIPs: ['None'] }, programmed: false },
  { name: 'empty clusterIP is skipped', spec: { clusterIP: '' }, programmed: false },
  { name: 'no clusterIP at all is skipped', spec: { clusterIP: undefined }, programmed: false },
  { name: 'null clusterIP is skipped', spec: { clusterIP: null }, programmed: false },
  { name: 'empty clusterIPs falls back to clusterIP', spec: { clusterIPs: [] }, programmed: true },
  {
    name: 'ExternalName is skipped',
    spec: { type: 'ExternalName', clusterIP: undefined, externalName: 'db.example.com' },
    programmed: false,
  },
  { name: 'ExternalName is skipped even with a cluster IP', spec: { type: 'ExternalName' }, programmed: false },
  { name: 'headless label is skipped', labels: { [HEADLESS]: '' }, programmed: false },
  { name: 'headless label with a value is skipped', labels: { [HEADLESS]: 'true' }, programmed: false },
  { name: 'other labels do not matter', labels: { app: 'web' }, programmed: true },
  { name: 'service-proxy-name=other, default proxy: skipped', labels: { [PROXY_NAME]: 'other' }, programmed: false },
  { name: 'service-proxy-name empty value, default proxy: skipped', labels: { [PROXY_NAME]: '' }, programmed: false },
  {
    name: 'service-proxy-name=sluice, proxy named sluice: programmed',
    labels: { [PROXY_NAME]: 'sluice' },
    serviceProxyName: 'sluice',
    programmed: true,
  },
  {
    name: 'service-proxy-name=other, proxy named sluice: skipped',
    labels: { [PROXY_NAME]: 'other' },
    serviceProxyName: 'sluice',
    programmed: false,
  },
  {
    name: 'unlabelled Service, proxy named sluice: skipped (it belongs to the default proxy)',
    serviceProxyName: 'sluice',
    programmed: false,
  },
  {
    name: 'headless label wins over a matching proxy name',
    labels: { [PROXY_NAME]: 'sluice', [HEADLESS]: '' },
    serviceProxyName: 'sluice',
    programmed: false,
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({
      services: [service('web', c.spec ?? {}, { metadata: { labels: c.labels ?? {} } })],
      slices: [slice('web', [ep('10.0.0.1')])],
      config: { serviceProxyName: c.serviceProxyName ?? '' },
    });
    t.same(keys(result), c.programmed ? ['default/web:http/TCP/IPv4'] : []);
    // Skipping is a decision, not a problem: nothing is reported.
    t.same(result.errors, []);
  });
}

t.test('slices of a skipped Service and slices without a Service produce nothing and no error', async (t) => {
  const result = compute({
    services: [service('headless', { clusterIP: 'None' }), service('web')],
    slices: [slice('headless', [ep('10.0.0.1')]), slice('orphan', [ep('10.0.0.2')]), slice('web', [ep('10.0.0.3')])],
  });
  t.same(keys(result), ['default/web:http/TCP/IPv4']);
  t.same(result.errors, []);
});

t.test('a Service in another namespace does not take slices of the same name', async (t) => {
  const result = compute({
    services: [service('web'), service('web', { clusterIP: '10.96.0.11' }, { metadata: { namespace: 'other' } })],
    slices: [slice('web', [ep('10.0.0.1')]), slice('web', [ep('10.0.0.2')], { namespace: 'other' })],
  });
  t.same(
    [...result.state.services.values()].map((p) => [p.key, p.clusterBackends.map((b) => b.ip)]),
    [
      ['default/web:http/TCP/IPv4', ['10.0.0.1']],
      ['other/web:http/TCP/IPv4', ['10.0.0.2']],
    ],
  );
});
