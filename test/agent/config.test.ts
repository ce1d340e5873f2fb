import t from 'tap';
import { ConfigError, defaultConfig, parseConfig, usage } from '../../src/agent/config.js';

t.test('defaults are production-shaped', async (t) => {
  const cfg = parseConfig([], {});
  t.equal(cfg.command, 'run');
  t.equal(cfg.pinDir, '/sys/fs/bpf/sluice');
  t.equal(cfg.adminSocket, '/run/sluice/admin.sock');
  t.equal(cfg.connectTimeLb, 'tcp-udp');
  t.same(cfg.ctTimeouts, { tcpEstablished: 3600, tcpSynSent: 20, tcpFin: 30, udp: 60 });
  t.same(cfg, defaultConfig());
});

t.test('flags, = form, env, and precedence of flags over env', async (t) => {
  const cfg = parseConfig(
    ['--node-name', 'n1', '--manifests=/tmp/m', '--interfaces', 'veth*, eni*', '--min-sync-period', '250ms',
      '--connect-time-lb', 'tcp', '--metrics-address', 'off', '--ct-timeout-udp', '2m',
      '--node-port-addresses', '10.0.0.0/8,fd00::/64'],
    { NODE_NAME: 'from-env', SLUICE_LOG_LEVEL: 'debug', SLUICE_PIN_DIR: '/sys/fs/bpf/x' },
  );
  t.equal(cfg.nodeName, 'n1');
  t.equal(cfg.manifestsDir, '/tmp/m');
  t.same(cfg.interfacePatterns, ['veth*', 'eni*']);
  t.equal(cfg.minSyncPeriodMs, 250);
  t.equal(cfg.connectTimeLb, 'tcp');
  t.equal(cfg.metricsAddress, '');
  t.equal(cfg.ctTimeouts.udp, 120);
  t.same(cfg.nodePortAddresses, ['10.0.0.0/8', 'fd00::/64']);
  t.equal(cfg.logLevel, 'debug');
  t.equal(cfg.pinDir, '/sys/fs/bpf/x');
});

t.test('subcommands', async (t) => {
  t.equal(parseConfig(['cleanup', '--pin-dir', '/sys/fs/bpf/y'], {}).command, 'cleanup');
  t.equal(parseConfig(['--help'], {}).command, 'help');
  t.equal(parseConfig(['--version'], {}).command, 'version');
  t.match(usage(), /--connect-time-lb .*\[\$SLUICE_CONNECT_TIME_LB\]/);
});

const bad: [string[], Record<string, string>, RegExp][] = [
  [['--connect-time-lb', 'udp'], {}, /--connect-time-lb: "udp" is not one of tcp, tcp-udp, disabled/],
  [['--log-level', 'loud'], {}, /--log-level: "loud" is not one of/],
  [['--min-sync-period', '10'], {}, /--min-sync-period: "10" is not a duration/],
  [['--metrics-address', 'localhost:80'], {}, /--metrics-address: "localhost:80" is not host:port with an IP host/],
  [['--metrics-address', '127.0.0.1:99999'], {}, /from 1 to 65535/],
  [['--node-port-addresses', '10.0.0.0/33'], {}, /"10.0.0.0\/33" is not a CIDR/],
  [['--interfaces', 'veth;rm'], {}, /"veth;rm" is not an interface name glob/],
  [['--interfaces', ','], {}, /needs at least one pattern/],
  [['--bogus'], {}, /unknown flag "--bogus"/],
  [['stray'], {}, /unknown argument "stray"/],
  [['--node-name'], {}, /--node-name: needs a value/],
  [['--node-name', ' '], {}, /--node-name: must not be empty/],
  [[], { SLUICE_CONNECT_TIME_LB: 'maybe' }, /environment SLUICE_CONNECT_TIME_LB: --connect-time-lb: "maybe"/],
  // Never a TCP port: the admin API is a Unix socket path only.
  [['--admin-socket', '19999'], {}, /--admin-socket: "19999" is not an absolute path/],
  [['--admin-socket', 'run/admin.sock'], {}, /--admin-socket: "run\/admin.sock" is not an absolute path/],
  [['--full-resync-period', '0s'], {}, /--full-resync-period: "0s" is too short \(at least 1s\)/],
  [['--ct-timeout-udp', '0s'], {}, /--ct-timeout-udp: "0s" is too short/],
  [['--service-proxy-name', 'not a label!'], {}, /--service-proxy-name: "not a label!" is not a Kubernetes label value/],
  [['--external-mode', 'tunnel'], {}, /--external-mode: "tunnel" is not one of SNAT, Tunnel, DSR/],
  [[], { SLUICE_EXTERNAL_MODE: 'IPIP' }, /environment SLUICE_EXTERNAL_MODE: --external-mode: "IPIP" is not one of SNAT, Tunnel, DSR/],
  [['--external-mode', 'dsr'], {}, /--external-mode: "dsr" is not one of SNAT, Tunnel, DSR/],
  [['--dsr-optout-cidrs', '10.0.0.0/8,bogus'], {}, /--dsr-optout-cidrs: "bogus" is not a CIDR like 203.0.113.0\/24 or 2001:db8::\/32/],
  [['--dsr-optout-cidrs', '10.0.0.0/33'], {}, /--dsr-optout-cidrs: "10.0.0.0\/33" is not a CIDR/],
  [['--dsr-optout-cidrs', '10.1.2.3/8'], {}, /--dsr-optout-cidrs: "10.1.2.3\/8" has host bits set \(the network is 10.0.0.0\/8\)/],
  [['--dsr-optout-cidrs', 'fd00::1/8'], {}, /--dsr-optout-cidrs: "fd00::1\/8" has host bits set \(the network is fd00::\/8\)/],
  [['--dsr-optout-cidrs', 'fd00::/129'], {}, /--dsr-optout-cidrs: "fd00::\/129" is not an IPv6 CIDR like 2001:db8::\/32/],
  [['--dsr-optout-cidrs', 'fd00:::1/64'], {}, /--dsr-optout-cidrs: "fd00:::1\/64" is not an IPv6 CIDR/],
  [[], { SLUICE_DSR_OPTOUT_CIDRS: '300.0.0.0/8' }, /environment SLUICE_DSR_OPTOUT_CIDRS: --dsr-optout-cidrs: "300.0.0.0\/8" is not a CIDR/],
  [['--tunnel-port', '0'], {}, /--tunnel-port: "0" is not a whole number from 1 to 65535/],
  [['--tunnel-mtu', '100'], {}, /--tunnel-mtu: "100" is not a whole number from 576 to 65535/],
];

t.test('external mode: Tunnel by default; SNAT or Tunnel by flag or environment, with its port and MTU', async (t) => {
  const d = parseConfig(['--node-name', 'n1'], {});
  t.same([d.externalMode, d.tunnelPort, d.tunnelMtu], ['Tunnel', 6080, 1500]);
  t.equal(parseConfig(['--external-mode', 'SNAT'], {}).externalMode, 'SNAT', 'kube-proxy\'s behaviour on request');
  const c = parseConfig(['--node-name', 'n1', '--tunnel-port', '8472', '--tunnel-mtu', '9001'], { SLUICE_EXTERNAL_MODE: 'Tunnel' });
  t.same([c.externalMode, c.tunnelPort, c.tunnelMtu], ['Tunnel', 8472, 9001]);
  const { externalModeRodata } = await import('../../src/agent/datapath.js');
  t.same(externalModeRodata(c), { sl_external_mode: 1, sl_tunnel_port: 8472, sl_tunnel_mtu: 9001 });
});

t.test('DSR mode and its opt-out CIDRs, by flag or environment (ConfigMap)', async (t) => {
  const d = parseConfig(['--external-mode', 'DSR', '--dsr-optout-cidrs', '203.0.113.0/24, 198.51.100.7/32,203.0.113.0/24,0.0.0.0/0'], {});
  t.same([d.externalMode, d.dsrOptoutCidrs], ['DSR', ['203.0.113.0/24', '198.51.100.7/32', '0.0.0.0/0']], 'trimmed, duplicates dropped');
  const e = parseConfig([], { SLUICE_EXTERNAL_MODE: 'DSR', SLUICE_DSR_OPTOUT_CIDRS: '10.0.0.0/8' });
  t.same([e.externalMode, e.dsrOptoutCidrs], ['DSR', ['10.0.0.0/8']]);
  t.same(parseConfig([], {}).dsrOptoutCidrs, [], 'none by default');
  const six = parseConfig(['--dsr-optout-cidrs', '2001:DB8:0::/32,fd00::7/128,10.0.0.0/8'], {});
  t.same(six.dsrOptoutCidrs, ['2001:db8::/32', 'fd00::7/128', '10.0.0.0/8'], 'IPv6 CIDRs too, in canonical form');
  const { externalModeRodata } = await import('../../src/agent/datapath.js');
  t.equal(externalModeRodata(e).sl_external_mode, 2);
});
for (const [argv, env, message] of bad) {
  t.test(`rejects ${JSON.stringify(argv)} ${JSON.stringify(env)}`, async (t) => {
    t.throws(() => parseConfig(argv, env), { name: 'ConfigError', message });
    t.throws(() => parseConfig(argv, env), ConfigError);
  });
}

t.test('checkConfigPaths: the paths flags name must exist, named by flag and variable', async (t) => {
  const { checkConfigPaths } = await import('../../src/agent/config.js');
  const probe = (dirs: string[], files: string[] = []) => ({
    kind: (p: string) => (dirs.includes(p) ? 'directory' as const : files.includes(p) ? 'file' as const : 'missing' as const),
    isCgroup2: (p: string) => p.startsWith('/cg'),
  });
  const cfg = (argv: string[]) => parseConfig(['--node-name', 'n1', ...argv], {});
  t.throws(() => checkConfigPaths(cfg(['--manifests', '/nope', '--connect-time-lb', 'disabled']), probe([])), /--manifests \(\$SLUICE_MANIFESTS\): "\/nope" does not exist/);
  t.throws(() => checkConfigPaths(cfg(['--manifests', '/file', '--connect-time-lb', 'disabled']), probe([], ['/file'])), /"\/file" is not a directory/);
  t.doesNotThrow(() => checkConfigPaths(cfg(['--manifests', '/m', '--cgroup', '/cg/pods']), probe(['/m', '/cg/pods'])));
  t.throws(() => checkConfigPaths(cfg(['--manifests', '/m', '--cgroup', '/tmp']), probe(['/m', '/tmp'])), /--cgroup .*"\/tmp" is not a cgroup v2 directory/);
});

t.test('--k8s-api-server / SLUICE_K8S_API_SERVER: the API server real address, as a URL', async (t) => {
  const url = (v: string) => parseConfig(['--k8s-api-server', v], {}).k8sApiServer;
  t.equal(parseConfig([], {}).k8sApiServer, '', 'no override by default');
  t.equal(url('https://ABCDEF0123.gr7.eu-west-1.eks.amazonaws.com'), 'https://abcdef0123.gr7.eu-west-1.eks.amazonaws.com', 'the EKS endpoint as given by describe-cluster');
  t.equal(url('myaks-dns-1a2b3c4d.hcp.westeurope.azmk8s.io:443'), 'https://myaks-dns-1a2b3c4d.hcp.westeurope.azmk8s.io', 'the AKS FQDN, https by default');
  t.equal(url('10.0.0.5:6443'), 'https://10.0.0.5:6443');
  t.equal(url('https://[fd00::5]:6443/'), 'https://[fd00::5]:6443');
  t.equal(url('http://127.0.0.1:8080'), 'http://127.0.0.1:8080');
  t.equal(parseConfig([], { SLUICE_K8S_API_SERVER: 'api.example:6443' }).k8sApiServer, 'https://api.example:6443', 'from the environment (the ConfigMap)');
  for (const bad of ['https://api server', 'ftp://api.example', 'https://api.example:99999', 'https://user:pw@api.example', 'https://api.example/path', 'https://-bad-.example', '10.96.0.1:x']) {
    t.throws(() => parseConfig(['--k8s-api-server', bad], {}), new RegExp(`^--k8s-api-server: "${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" is not an API server address`), bad);
  }
  t.throws(() => parseConfig([], { SLUICE_K8S_API_SERVER: 'no such:host' }), /^environment SLUICE_K8S_API_SERVER: --k8s-api-server: "no such:host"/);
});
