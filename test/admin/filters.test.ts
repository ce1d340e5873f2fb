import t from 'tap';
import {
  canonicalIp, FilterError, formatHostPort, parseHostPort, parseNatTarget, parseServiceKey, parseServiceRef, serviceKeyMatches,
} from '../../src/admin/filters.js';

t.test('service references', async (t) => {
  t.same(parseServiceRef('default/web'), { namespace: 'default', name: 'web' });
  t.same(parseServiceRef(' kube-system/dns:dns-tcp '), { namespace: 'kube-system', name: 'dns', portName: 'dns-tcp' });
  t.same(parseServiceRef('default/web:'), { namespace: 'default', name: 'web', portName: '' }, 'the unnamed port');
  for (const bad of ['web', 'default/', '/web', 'Default/web', 'a/b/c', 'default/web:Http', `default/${'x'.repeat(64)}`, 'a/-b']) {
    t.throws(() => parseServiceRef(bad), FilterError, bad);
  }
  t.throws(() => parseServiceRef('x', 'body field "service"'), { status: 400, message: 'body field "service": "x" is not a service as namespace/name (or namespace/name:port-name)' });
});

t.test('service keys and matching', async (t) => {
  t.same(parseServiceKey('default/web:/TCP/IPv4'), { namespace: 'default', name: 'web', portName: '', protocol: 'TCP', family: 'IPv4' });
  t.equal(parseServiceKey('svc#7'), null);
  const key = 'kube-system/dns:dns/UDP/IPv6';
  t.ok(serviceKeyMatches({ namespace: 'kube-system', name: 'dns' }, key));
  t.ok(serviceKeyMatches({ namespace: 'kube-system', name: 'dns', portName: 'dns' }, key));
  t.notOk(serviceKeyMatches({ namespace: 'kube-system', name: 'dns', portName: '' }, key));
  t.notOk(serviceKeyMatches({ namespace: 'kube-system', name: 'dn' }, key));
  t.notOk(serviceKeyMatches({ namespace: 'default', name: 'dns' }, 'svc#3'));
});

t.test('addresses: IPv4, bracketed IPv6, canonical forms', async (t) => {
  t.same(parseHostPort('10.96.0.10:80', 'frontend'), { ip: '10.96.0.10', port: 80 });
  t.same(parseHostPort('[FD00:0:0::0A]:443', 'frontend'), { ip: 'fd00::a', port: 443 });
  t.same(parseHostPort('10.0.0.1', 'backend', true), { ip: '10.0.0.1' });
  t.same(parseHostPort('fd00::1', 'backend', true), { ip: 'fd00::1' }, 'bare IPv6 is an IP, never IP:port');
  t.same(parseHostPort('[fd00::1]', 'backend', true), { ip: 'fd00::1' });
  for (const bad of ['10.0.0.1', 'fd00::1:80', '10.0.0.256:80', '10.0.0.1:0', '10.0.0.1:65536', 'host:80', '[10.0.0.1]:80x']) {
    t.throws(() => parseHostPort(bad, 'frontend'), FilterError, bad);
  }
  t.equal(canonicalIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  t.equal(canonicalIp('nope'), null);
  t.equal(formatHostPort({ ip: 'fd00::a', port: 443 }), '[fd00::a]:443');
  t.equal(formatHostPort({ ip: '10.0.0.1' }), '10.0.0.1');
});

t.test('nat targets: a slash means a service', async (t) => {
  t.same(parseNatTarget('default/web'), { service: { namespace: 'default', name: 'web' } });
  t.same(parseNatTarget('10.96.0.10:80'), { frontend: { ip: '10.96.0.10', port: 80 } });
  t.throws(() => parseNatTarget('web'), /frontend: "web" is not an address as IP:port/);
});
