// The node's own addresses for external traffic: NodePort candidates from `ip addr`, the SNAT
// source address, and the SNAT port range checked against ip_local_port_range; the flags.
import t from 'tap';
import { nodePortCandidates, parseIpAddrShow, snatAddress, snatRangeProblem } from '../../src/agent/host-addresses.js';
import { parseConfig } from '../../src/agent/config.js';

const IP_ADDR = [
  '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 192.168.50.2/24 brd 192.168.50.255 scope global eth0\\       valid_lft forever preferred_lft forever',
  '2: eth0    inet 192.168.50.9/24 scope global secondary eth0',
  '5: vethsl12p0@if2    inet 10.244.1.1/32 scope global vethsl12p0',
  '7: ens5    inet 10.0.3.4/20 scope global ens5',
].join('\n');

t.test('ip -o -4 addr show is parsed; NodePort candidates are every address but loopback', async (t) => {
  const addrs = parseIpAddrShow(IP_ADDR);
  t.same(addrs.map((a) => `${a.ifname} ${a.address}`), ['lo 127.0.0.1', 'eth0 192.168.50.2', 'eth0 192.168.50.9', 'vethsl12p0 10.244.1.1', 'ens5 10.0.3.4']);
  t.same(nodePortCandidates(addrs), ['10.0.3.4', '10.244.1.1', '192.168.50.2', '192.168.50.9']);
});

t.test('the SNAT address: the Node IP when a host interface carries it, else the first host-interface address', async (t) => {
  const addrs = parseIpAddrShow(IP_ADDR);
  t.equal(snatAddress(addrs, ['eth*', 'ens*'], '10.0.3.4'), '10.0.3.4');
  t.equal(snatAddress(addrs, ['eth*', 'ens*'], '10.244.1.1'), '192.168.50.2', 'a pod gateway is no host interface');
  t.equal(snatAddress(addrs, ['eth*'], undefined), '192.168.50.2');
  t.equal(snatAddress(addrs, ['bond*'], '192.168.50.2'), undefined);
});

t.test('the SNAT range must lie outside ip_local_port_range', async (t) => {
  t.equal(snatRangeProblem({ min: 61000, max: 65535 }, { min: 32768, max: 60999 }), undefined);
  t.match(snatRangeProblem({ min: 60000, max: 65535 }, { min: 32768, max: 60999 }), /overlaps net.ipv4.ip_local_port_range 32768-60999/);
  t.equal(snatRangeProblem({ min: 20000, max: 29999 }, { min: 32768, max: 60999 }), undefined);
});

t.test('flags: --host-interfaces and --snat-port-range', async (t) => {
  const d = parseConfig([], {});
  t.same(d.hostInterfacePatterns, ['eth*', 'ens*', 'enp*', 'eno*', 'bond*']);
  t.same(d.snatPortRange, { min: 61000, max: 65535 });
  t.same(parseConfig(['--host-interfaces', 'eth0,ens*'], {}).hostInterfacePatterns, ['eth0', 'ens*']);
  t.same(parseConfig(['--host-interfaces', 'none'], {}).hostInterfacePatterns, []);
  t.same(parseConfig([], { SLUICE_SNAT_PORT_RANGE: '40000-40100' }).snatPortRange, { min: 40000, max: 40100 });
  t.throws(() => parseConfig(['--snat-port-range', '65000-61000'], {}), /--snat-port-range: "65000-61000": MAX is below MIN/);
  t.throws(() => parseConfig(['--snat-port-range', '100-2000'], {}), /--snat-port-range: "100" is not a whole number from 1024 to 65535/);
  t.throws(() => parseConfig(['--host-interfaces', 'eth0;rm'], {}), /--host-interfaces: "eth0;rm" is not an interface name glob/);
});
