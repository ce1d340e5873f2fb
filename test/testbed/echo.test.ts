import t from 'tap';
import { requirePrivileges } from '../helpers/privileges.js';
import { runEchoClient, startEchoServer, testbedScript } from '../../src/testbed/echo.js';
import { run as runCommand } from '../../src/testbed/exec.js';
import { nodeArgv } from '../../src/testbed/node-child.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { createTopology } from '../../src/testbed/topology.js';

t.test('echo server and client: TCP, connected and unconnected UDP, and their errors', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  run.handleProcessEvents();
  t.teardown(() => run.destroy());
  const topo = await createTopology(run, { pods: 2, ipv6: true });
  const [client, server] = topo.pods;
  if (!client || !server) throw new Error('topology is missing pods');
  const echo = await startEchoServer(run, { ns: server.ns, name: 'backend-a', tcp: [80, 81], udp: [53] });

  const tcp = await runEchoClient({ ns: client.ns, proto: 'tcp', host: server.ip, port: 81, message: 'ping 1' });
  t.match(tcp, [{ ok: true, pod: 'backend-a', echo: 'ping 1', seenPeer: { address: client.ip },
    peername: { address: server.ip, port: 81 }, local: { address: client.ip } }]);

  const connected = await runEchoClient({ ns: client.ns, proto: 'udp', host: server.ip, port: 53, connected: true, count: 2 });
  t.match(connected, [
    { ok: true, pod: 'backend-a', echo: 'hello', peername: { address: server.ip, port: 53 }, recvfrom: { address: server.ip, port: 53 } },
    { ok: true, i: 1 },
  ]);
  t.equal(connected[0]?.seenPeer?.port, connected[0]?.local?.port, 'server saw our source port');

  const unconnected = await runEchoClient({ ns: client.ns, proto: 'udp', host: server.ip, port: 53 });
  t.match(unconnected, [{ ok: true, peername: null, recvfrom: { address: server.ip, port: 53 } }]);

  const refused = await runEchoClient({ ns: client.ns, proto: 'tcp', host: server.ip, port: 82 });
  t.match(refused, [{ ok: false, error: { code: 'ECONNREFUSED' } }], 'closed TCP port is refused');
  t.ok((refused[0]?.ms ?? 1e9) < 1000, `and fast (${refused[0]?.ms} ms)`);

  const udpRefused = await runEchoClient({ ns: client.ns, proto: 'udp', host: server.ip, port: 54, connected: true });
  t.match(udpRefused, [{ ok: false, error: { code: 'ECONNREFUSED' } }], 'connected UDP sees the ICMP port unreachable');

  const udpLost = await runEchoClient({ ns: client.ns, proto: 'udp', host: server.ip, port: 54, timeoutMs: 300 });
  t.match(udpLost, [{ ok: false, error: { code: 'ETIMEDOUT' } }], 'unconnected UDP can only time out');

  // Both families on one port: an IPv4 peer is reported as itself (the IPv6 socket is IPv6-only),
  // an IPv6 peer as its IPv6 address.
  await startEchoServer(run, { ns: server.ns, name: 'dual', tcp: [90], udp: [90], host: ['0.0.0.0', '::'] });
  for (const [host, self] of [[server.ip, client.ip], [server.ip6, client.ip6]] as const) {
    for (const proto of ['tcp', 'udp'] as const) {
      const [r] = await runEchoClient({ ns: client.ns, proto, host: host as string, port: 90 });
      t.match(r, { ok: true, pod: 'dual', seenPeer: { address: self } }, `${proto} to ${host}: the server saw ${self}`);
    }
  }

  await echo.stop();
  const afterStop = await runEchoClient({ ns: client.ns, proto: 'tcp', host: server.ip, port: 80 });
  t.match(afterStop, [{ ok: false, error: { code: 'ECONNREFUSED' } }], 'stop() really stopped the server');
});

t.test('a server that cannot listen fails to start with its reason', async (t) => {
  if (!(await requirePrivileges(t))) return;
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const ns = await run.netns('lonely');
  await t.rejects(startEchoServer(run, { ns, name: 'x', tcp: [80], host: '10.1.2.3' }),
    /echo server x in .* exited \(1\) before it was ready: .*EADDRNOTAVAIL/);
});

t.test('scripts reject bad usage with exit status 2 and say why', async (t) => {
  const client = await runCommand(nodeArgv(testbedScript('echo-client.mjs'), ['--proto', 'sctp', '--host', 'x', '--port', '1']),
    { allowFailure: true });
  t.equal(client.code, 2);
  t.match(client.stderr, /--proto: "sctp" is not tcp or udp/);
  const server = await runCommand(nodeArgv(testbedScript('echo-server.mjs'), ['--name', 'a', '--tcp', '70000']),
    { allowFailure: true });
  t.equal(server.code, 2);
  t.match(server.stderr, /--tcp: "70000" is not a port/);
});
