// --node-port-addresses with IPv6 CIDRs, and IPv6 node addresses for NodePorts: the flag takes
// IPv6 CIDRs (and refuses, naming flag and value, what the model could not use); the host's
// IPv6 interface addresses become NodePort candidates (not loopback, link-local, DAD-failed or
// temporary);
// through the model and the writer, a dual-stack NodePort Service gets NodePort frontends on
// the IPv6 node addresses the CIDRs select, in sl_frontends6.
import t from 'tap';
import { parseConfig } from '../../src/agent/config.js';
import { nodePortCandidates, parseIpAddrShow, snatAddress, snatAddress6 } from '../../src/agent/host-addresses.js';
import { MemoryServiceTables } from '../../src/dataplane/memory-tables.js';
import { ServiceTableWriter } from '../../src/dataplane/writer.js';
import { compute, ep, fronts, node, NODE, portOf, service, slice } from '../model/builders.js';

// `ip -o addr show` of a dual-stack node (both families, as the agent now reads it).
const IP_ADDR = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '1: lo    inet6 ::1/128 scope host noprefixroute \\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 192.168.50.2/24 brd 192.168.50.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet6 fd00:50::2/64 scope global \\       valid_lft forever preferred_lft forever',
  '2: eth0    inet6 2001:db8:50::2/64 scope global dynamic mngtmpaddr \\       valid_lft 86390sec preferred_lft 14390sec',
  '2: eth0    inet6 fe80::a8c1:abff:fe12:3456/64 scope link \\       valid_lft forever preferred_lft forever',
  '2: eth0    inet6 2001:db8:50:0:9c1e:4a2b:77d0:1f3e/64 scope global temporary dynamic \\       valid_lft 86390sec preferred_lft 14390sec',
  '3: ens5    inet6 fd00:60::9/64 scope global dadfailed tentative \\       valid_lft forever preferred_lft forever',
  '5: vethsl12p0@if2    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever',
].join('\n');

t.test('--node-port-addresses takes IPv6 CIDRs beside IPv4 ones, by flag or environment', async (t) => {
  t.same(parseConfig(['--node-port-addresses', 'fd00:50::/64, 2001:db8::/32,192.168.50.0/24'], {}).nodePortAddresses,
    ['fd00:50::/64', '2001:db8::/32', '192.168.50.0/24']);
  t.same(parseConfig([], { SLUICE_NODE_PORT_ADDRESSES: '::/0' }).nodePortAddresses, ['::/0']);
  t.same(parseConfig(['--node-port-addresses', 'fd00:50::2/64'], {}).nodePortAddresses, ['fd00:50::2/64'], 'host bits allowed, as kube-proxy (and the model) read them');
});

t.test('bad IPv6 values are refused at start, naming the flag and the value', async (t) => {
  const bad: [string, RegExp][] = [
    ['fd00::/129', /--node-port-addresses: "fd00::\/129" is not a CIDR like 10.0.0.0\/8 or fd00::\/64$/],
    ['fd00::1', /--node-port-addresses: "fd00::1" is not a CIDR/],
    ['fd00::g/64', /--node-port-addresses: "fd00::g\/64" is not a CIDR/],
    ['fd00::/064', /--node-port-addresses: "fd00::\/064" is not a CIDR/],
    ['fe80::1%eth0/64', /--node-port-addresses: "fe80::1%eth0\/64" is not a CIDR .*: a zone index \(%\.\.\.\) has no place in a CIDR/],
    ['::ffff:10.0.0.0/104', /--node-port-addresses: "::ffff:10.0.0.0\/104" is not a CIDR .*IPv4-mapped .* write the IPv4 CIDR/],
  ];
  for (const [value, message] of bad) t.throws(() => parseConfig(['--node-port-addresses', `fd00:50::/64,${value}`], {}), message, value);
  t.throws(() => parseConfig([], { SLUICE_NODE_PORT_ADDRESSES: 'fd00::/200' }), /environment SLUICE_NODE_PORT_ADDRESSES: --node-port-addresses: "fd00::\/200" is not a CIDR/);
});

t.test('the host\'s IPv6 addresses are NodePort candidates; loopback, link-local and DAD-failed are not', async (t) => {
  const addrs = parseIpAddrShow(IP_ADDR);
  t.same(addrs.map((a) => `${a.ifname} ${a.address}`), [
    'lo 127.0.0.1', 'lo ::1', 'eth0 192.168.50.2', 'eth0 fd00:50::2', 'eth0 2001:db8:50::2', 'eth0 fe80::a8c1:abff:fe12:3456', 'vethsl12p0 fe80::1',
  ], 'both families parsed; the DAD-failed and the temporary (privacy) address left out');
  t.same(nodePortCandidates(addrs), ['192.168.50.2', '2001:db8:50::2', 'fd00:50::2']);
  t.equal(snatAddress(addrs, ['eth*'], undefined), '192.168.50.2', 'the IPv4 SNAT source (sl_node_config) is IPv4');
  t.equal(snatAddress6(addrs, ['eth*'], undefined), 'fd00:50::2', 'the IPv6 SNAT source (sl_node_config6): the first global IPv6 address of a host interface');
  t.equal(snatAddress6(addrs, ['eth*'], '2001:db8:50::2'), '2001:db8:50::2', 'the Node\'s own IPv6 address first');
  t.equal(snatAddress6(addrs, ['veth*'], undefined), undefined, 'never a link-local address');
  t.equal(snatAddress6(addrs, ['bond*'], undefined), undefined);
});

t.test('model and writer: NodePort frontends on the IPv6 node addresses the CIDRs select, in sl_frontends6', async (t) => {
  const hostAddresses = nodePortCandidates(parseIpAddrShow(IP_ADDR));
  const web = service('web', {
    type: 'NodePort', clusterIP: '10.96.0.10', clusterIPs: ['10.96.0.10', 'fd00:96::10'], ipFamilies: ['IPv4', 'IPv6'], ipFamilyPolicy: 'RequireDualStack',
    ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }],
  });
  const slices = [
    slice('web', [ep('10.244.1.5', { node: NODE })], { name: 'web-v4' }),
    slice('web', [ep('fd00:10:244::5', { node: NODE })], { name: 'web-v6', addressType: 'IPv6' }),
  ];
  const nodes = [node(NODE, ['192.168.50.2', 'fd00:50::2'])];
  const frontendsOf = (nodePortAddresses: string[]) => {
    const result = compute({ services: [web], slices, nodes, config: { families: ['IPv4', 'IPv6'], nodePortAddresses, hostAddresses } });
    t.same(result.errors, [], `no model errors for ${JSON.stringify(nodePortAddresses)}`);
    return { result, v4: fronts(portOf(result)), v6: fronts(portOf(result, 'default/web:http/TCP/IPv6')) };
  };

  const all = frontendsOf([]);
  t.same(all.v6, ['ClusterIP [fd00:96::10]:80', 'NodePort [2001:db8:50::2]:30080', 'NodePort [fd00:50::2]:30080'], 'no CIDRs: every global IPv6 host address');
  t.same(all.v4, ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.50.2:30080']);

  const onlyUla = frontendsOf(['fd00::/8']);
  t.same(onlyUla.v6, ['ClusterIP [fd00:96::10]:80', 'NodePort [fd00:50::2]:30080'], 'an IPv6 CIDR selects the IPv6 addresses inside it');
  t.same(onlyUla.v4, ['ClusterIP 10.96.0.10:80'], 'IPv6 CIDRs only: no IPv4 NodePort (each family filtered by its own CIDRs)');
  const mixed = frontendsOf(['2001:db8::/32', '192.168.50.0/24']);
  t.same(mixed.v6, ['ClusterIP [fd00:96::10]:80', 'NodePort [2001:db8:50::2]:30080']);
  t.same(mixed.v4, ['ClusterIP 10.96.0.10:80', 'NodePort 192.168.50.2:30080']);

  // The writer puts them in the IPv6 maps, as NodePort frontends of the IPv6 service port.
  const v4 = new MemoryServiceTables();
  const v6 = new MemoryServiceTables({ family: 'IPv6', sharing: v4 });
  const writer = new ServiceTableWriter({ tables: v4, tables6: v6 });
  const res = writer.apply(onlyUla.result.state);
  t.same(res.errors, []);
  const keys6 = v6.frontends.entries().map(([k]) => `[${k.addr}]:${k.port}`).sort();
  t.same(keys6, ['[fd00:50::2]:30080', '[fd00:96::10]:80'], 'sl_frontends6: the ClusterIP and the selected IPv6 node address');
  t.equal(writer.frontendKind('default/web:http/TCP/IPv6', 'fd00:50::2', 30080), 'NodePort');
  t.notOk(v4.frontends.entries().some(([k]) => k.port === 30080), 'no IPv4 NodePort frontend');
});
