// KUBE-PROXY-SEMANTICS "Ports and endpoints": endpoint key, duplicates across slices, flags
// (ready / serving / terminating / local), sorting.
import t from 'tap';
import type { Backend } from '../../src/model/types.js';
import { addrs, compute, ep, NODE, portOf, service, slice, type EndpointOptions } from './builders.js';

type Obj = Record<string, unknown>;

t.test('flags: ready, serving, terminating, local', async (t) => {
  interface FlagCase {
    name: string;
    endpoint: EndpointOptions;
    flags: Pick<Backend, 'ready' | 'serving' | 'terminating' | 'local'>;
  }
  const cases: FlagCase[] = [
    { name: 'no conditions: ready and serving', endpoint: {}, flags: { ready: true, serving: true, terminating: false, local: false } },
    { name: 'null conditions read as unset', endpoint: { ready: null, serving: null, terminating: null }, flags: { ready: true, serving: true, terminating: false, local: false } },
    { name: 'ready false', endpoint: { ready: false }, flags: { ready: false, serving: true, terminating: false, local: false } },
    { name: 'serving false', endpoint: { ready: false, serving: false }, flags: { ready: false, serving: false, terminating: false, local: false } },
    { name: 'terminating only if true', endpoint: { terminating: false }, flags: { ready: true, serving: true, terminating: false, local: false } },
    { name: 'terminating true', endpoint: { ready: false, serving: true, terminating: true }, flags: { ready: false, serving: true, terminating: true, local: false } },
    { name: 'nodeName is this node: local', endpoint: { node: NODE }, flags: { ready: true, serving: true, terminating: false, local: true } },
    { name: 'nodeName is another node: not local', endpoint: { node: 'node-b' }, flags: { ready: true, serving: true, terminating: false, local: false } },
  ];
  for (const c of cases) {
    // Flags are read from whichever set holds the endpoint.
    const result = compute({ services: [service('web')], slices: [slice('web', [ep('10.0.0.1', c.endpoint)])] });
    const port = portOf(result);
    const found = [...port.clusterBackends, ...port.localBackends].find((b) => b.ip === '10.0.0.1');
    if (c.flags.ready || (c.flags.serving && c.flags.terminating)) {
      t.match(found, c.flags, c.name);
    } else {
      // Neither ready nor serving-terminating: the endpoint serves no traffic at all.
      t.equal(found, undefined, c.name);
    }
  }
});

t.test('nodeName and zone are carried to the backend', async (t) => {
  const result = compute({ services: [service('web')], slices: [slice('web', [ep('10.0.0.1', { node: 'node-b', zone: 'zone-b' })])] });
  t.same(portOf(result).clusterBackends.toArray(), [
    { ip: '10.0.0.1', port: 8080, nodeName: 'node-b', zone: 'zone-b', local: false, ready: true, serving: true, terminating: false },
  ]);
});

t.test('endpoint without addresses is skipped; only addresses[0] is used', async (t) => {
  const result = compute({
    services: [service('web')],
    slices: [
      slice('web', [
        ep('x', { addresses: [] }),
        { conditions: {} },
        ep('x', { addresses: ['10.0.0.2', '10.0.0.3'] }),
      ]),
    ],
  });
  t.same(addrs(portOf(result).clusterBackends), ['10.0.0.2:8080']);
  t.same(result.errors, []);
});

interface DedupeCase {
  name: string;
  /** Slices in the order they are given; merging reads them by slice name. */
  slices: Array<{ name: string; endpoint: EndpointOptions; node?: string }>;
  /** Which slice's copy of 10.0.0.1:8080 is kept, by its nodeName. */
  keptNode: string;
}

const dedupeCases: DedupeCase[] = [
  {
    name: 'first copy kept when the second is terminating',
    slices: [
      { name: 'a', endpoint: { node: 'from-a' } },
      { name: 'b', endpoint: { node: 'from-b', ready: false, terminating: true } },
    ],
    keptNode: 'from-a',
  },
  {
    name: 'a non-terminating copy replaces a terminating one',
    slices: [
      { name: 'a', endpoint: { node: 'from-a', ready: false, terminating: true } },
      { name: 'b', endpoint: { node: 'from-b' } },
    ],
    keptNode: 'from-b',
  },
  {
    name: 'two non-terminating copies: the later replaces (same rule: "unless the new one is not terminating")',
    slices: [
      { name: 'a', endpoint: { node: 'from-a' } },
      { name: 'b', endpoint: { node: 'from-b' } },
    ],
    keptNode: 'from-b',
  },
  {
    name: 'two terminating copies: the first stays',
    slices: [
      { name: 'a', endpoint: { node: 'from-a', ready: false, terminating: true } },
      { name: 'b', endpoint: { node: 'from-b', ready: false, terminating: true } },
    ],
    keptNode: 'from-a',
  },
  {
    name: 'order is by slice name, not by input order',
    slices: [
      { name: 'b', endpoint: { node: 'from-b', ready: false, terminating: true } },
      { name: 'a', endpoint: { node: 'from-a' } },
    ],
    keptNode: 'from-a',
  },
];

for (const c of dedupeCases) {
  t.test(`duplicates: ${c.name}`, async (t) => {
    const result = compute({
      services: [service('web')],
      slices: c.slices.map((s) => slice('web', [ep('10.0.0.1', s.endpoint)], { name: s.name })),
    });
    const port = portOf(result);
    const all = [...port.clusterBackends];
    t.equal(all.length, 1, 'one backend for one ip:port');
    t.equal(all[0]?.nodeName, c.keptNode);
  });
}

t.test('same IP with two ports is two endpoints; textual IPv6 variants are one', async (t) => {
  const result = compute({
    services: [service('web', { clusterIP: 'fd00:96::10', ports: [{ name: 'http', port: 80 }] })],
    slices: [
      slice('web', [ep('FD00::0a'), ep('fd00:0:0::a')], { name: 'a', addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }] }),
      slice('web', [ep('fd00::a')], { name: 'b', addressType: 'IPv6', ports: [{ name: 'http', port: 9090 }] }),
    ],
    config: { families: ['IPv6'] },
  });
  t.same(addrs(portOf(result, 'default/web:http/TCP/IPv6').clusterBackends), ['[fd00::a]:8080', '[fd00::a]:9090']);
});

t.test('sorted by IP numerically, then port', async (t) => {
  const ips = ['10.0.0.10', '10.0.0.9', '9.255.255.255', '10.0.1.0', '10.0.0.100'];
  const slices: Obj[] = [
    slice('web', ips.map((ip) => ep(ip)), { name: 'a', ports: [{ name: 'http', port: 8080 }] }),
    slice('web', [ep('10.0.0.9')], { name: 'b', ports: [{ name: 'http', port: 80 }] }),
  ] as unknown as Obj[];
  const result = compute({ services: [service('web')], slices });
  t.same(addrs(portOf(result).clusterBackends), [
    '9.255.255.255:8080',
    '10.0.0.9:80',
    '10.0.0.9:8080',
    '10.0.0.10:8080',
    '10.0.0.100:8080',
    '10.0.1.0:8080',
  ]);
});

t.test('IPv6 sorted numerically, not textually', async (t) => {
  const ips = ['fd00::10', 'fd00::9', 'fd00::a', '2001:db8::1'];
  const result = compute({
    services: [service('web', { clusterIP: 'fd00:96::10' })],
    slices: [slice('web', ips.map((ip) => ep(ip)), { addressType: 'IPv6' })],
    config: { families: ['IPv6'] },
  });
  t.same(addrs(portOf(result, 'default/web:http/TCP/IPv6').clusterBackends), [
    '[2001:db8::1]:8080',
    '[fd00::9]:8080',
    '[fd00::a]:8080',
    '[fd00::10]:8080',
  ]);
});

t.test('slices are grouped by namespace + kubernetes.io/service-name, not by slice name', async (t) => {
  const result = compute({
    services: [service('web')],
    slices: [
      slice('web', [ep('10.0.0.1')], { name: 'anything-1' }),
      slice('web', [ep('10.0.0.2')], { name: 'anything-2' }),
      slice('api', [ep('10.0.0.3')], { name: 'web-abc' }),
    ],
  });
  t.same(addrs(portOf(result).clusterBackends), ['10.0.0.1:8080', '10.0.0.2:8080']);
});
