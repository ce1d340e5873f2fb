// KUBE-PROXY-SEMANTICS "Ports and endpoints": a Service port matches a slice port on name AND
// protocol; backend numbers come from the slice (targetPort is never read).
import t from 'tap';
import { addrs, compute, ep, keys, portOf, service, slice } from './builders.js';

type Obj = Record<string, unknown>;

interface Case {
  name: string;
  servicePorts: Obj[];
  slicePorts: Obj[];
  /** key → backends 'ip:port' */
  expect: Record<string, string[]>;
}

const cases: Case[] = [
  {
    name: 'same name and protocol match; the number comes from the slice',
    servicePorts: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 9999 }],
    slicePorts: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': ['10.0.0.1:8080'] },
  },
  {
    name: 'targetPort given by name is never read either',
    servicePorts: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'web' }],
    slicePorts: [{ name: 'http', port: 8081, protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': ['10.0.0.1:8081'] },
  },
  {
    name: 'different name does not match',
    servicePorts: [{ name: 'http', port: 80, protocol: 'TCP' }],
    slicePorts: [{ name: 'https', port: 8443, protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': [] },
  },
  {
    name: 'same name, different protocol does not match',
    servicePorts: [{ name: 'http', port: 80, protocol: 'TCP' }],
    slicePorts: [{ name: 'http', port: 8080, protocol: 'UDP' }],
    expect: { 'default/web:http/TCP/IPv4': [] },
  },
  {
    name: "unnamed Service port matches slice port named ''",
    servicePorts: [{ port: 80, protocol: 'TCP' }],
    slicePorts: [{ name: '', port: 8080, protocol: 'TCP' }],
    expect: { 'default/web:/TCP/IPv4': ['10.0.0.1:8080'] },
  },
  {
    name: "slice port with nil name is read as '' and matches the unnamed Service port",
    servicePorts: [{ port: 80, protocol: 'TCP' }],
    slicePorts: [{ port: 8080, protocol: 'TCP' }],
    expect: { 'default/web:/TCP/IPv4': ['10.0.0.1:8080'] },
  },
  {
    name: 'slice port with nil name does not match a named Service port',
    servicePorts: [{ name: 'http', port: 80, protocol: 'TCP' }],
    slicePorts: [{ name: null, port: 8080, protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': [] },
  },
  {
    name: 'protocol defaults to TCP on both sides',
    servicePorts: [{ name: 'http', port: 80 }],
    slicePorts: [{ name: 'http', port: 8080 }],
    expect: { 'default/web:http/TCP/IPv4': ['10.0.0.1:8080'] },
  },
  {
    name: 'defaulted TCP does not match an explicit UDP slice port',
    servicePorts: [{ name: 'dns', port: 53 }],
    slicePorts: [{ name: 'dns', port: 5353, protocol: 'UDP' }],
    expect: { 'default/web:dns/TCP/IPv4': [] },
  },
  {
    name: 'slice port with nil port is ignored',
    servicePorts: [{ name: 'http', port: 80 }],
    slicePorts: [{ name: 'http', protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': [] },
  },
  {
    name: 'slice port with port 0 is ignored',
    servicePorts: [{ name: 'http', port: 80 }],
    slicePorts: [{ name: 'http', port: 0, protocol: 'TCP' }],
    expect: { 'default/web:http/TCP/IPv4': [] },
  },
  {
    name: 'SCTP ports are proxied',
    servicePorts: [{ name: 'sig', port: 3868, protocol: 'SCTP' }],
    slicePorts: [{ name: 'sig', port: 3868, protocol: 'SCTP' }],
    expect: { 'default/web:sig/SCTP/IPv4': ['10.0.0.1:3868'] },
  },
  {
    name: 'multiport: each Service port takes its own slice port',
    servicePorts: [
      { name: 'http', port: 80 },
      { name: 'metrics', port: 9090 },
    ],
    slicePorts: [
      { name: 'metrics', port: 9100 },
      { name: 'http', port: 8080 },
    ],
    expect: {
      'default/web:http/TCP/IPv4': ['10.0.0.1:8080'],
      'default/web:metrics/TCP/IPv4': ['10.0.0.1:9100'],
    },
  },
  {
    name: 'same port number, different protocols: two Service ports',
    servicePorts: [
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, protocol: 'TCP' },
    ],
    slicePorts: [
      { name: 'dns', port: 1053, protocol: 'UDP' },
      { name: 'dns-tcp', port: 1054, protocol: 'TCP' },
    ],
    expect: {
      'default/web:dns/UDP/IPv4': ['10.0.0.1:1053'],
      'default/web:dns-tcp/TCP/IPv4': ['10.0.0.1:1054'],
    },
  },
  {
    name: 'same name with TCP and UDP: two Service ports, matched by protocol',
    servicePorts: [
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'dns', port: 53, protocol: 'TCP' },
    ],
    slicePorts: [
      { name: 'dns', port: 2053, protocol: 'TCP' },
      { name: 'dns', port: 1053, protocol: 'UDP' },
    ],
    expect: {
      'default/web:dns/TCP/IPv4': ['10.0.0.1:2053'],
      'default/web:dns/UDP/IPv4': ['10.0.0.1:1053'],
    },
  },
  {
    name: 'a Service without ports has nothing to program',
    servicePorts: [],
    slicePorts: [{ name: 'http', port: 8080 }],
    expect: {},
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({
      services: [service('web', { ports: c.servicePorts })],
      slices: [slice('web', [ep('10.0.0.1')], { ports: c.slicePorts })],
    });
    t.same(result.errors, []);
    t.same(keys(result), Object.keys(c.expect).sort());
    for (const [key, backends] of Object.entries(c.expect)) t.same(addrs(portOf(result, key).clusterBackends), backends, key);
  });
}

t.test('the same port name with two numbers across slices (rolling targetPort change): both kept', async (t) => {
  const result = compute({
    services: [service('web')],
    slices: [
      slice('web', [ep('10.0.0.1')], { name: 'web-old', ports: [{ name: 'http', port: 8080 }] }),
      slice('web', [ep('10.0.0.2')], { name: 'web-new', ports: [{ name: 'http', port: 9090 }] }),
    ],
  });
  t.same(addrs(portOf(result).clusterBackends), ['10.0.0.1:8080', '10.0.0.2:9090']);
});

t.test('DesiredServicePort identity fields', async (t) => {
  const result = compute({
    services: [service('web', { ports: [{ name: 'dns', port: 53, protocol: 'UDP' }] })],
  });
  const port = portOf(result, 'default/web:dns/UDP/IPv4');
  t.match(port, { namespace: 'default', name: 'web', portName: 'dns', protocol: 'UDP', family: 'IPv4' });
});
