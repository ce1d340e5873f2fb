// IPv6 over the TC path with real sockets: no connect-time program, the TC programs on every pod
// veth, so every success is sl_tc_from_pod6/sl_tc_to_pod6's (the node namespace has no route
// for the VIP). Neighbour discovery between the pods and the node crosses the same programs.
// Also: a service without endpoints and an unknown port refused (TCP RST / ICMPv6 port
// unreachable from the VIP: ECONNREFUSED, not a timeout), and hairpin (the client pod reaching
// itself through an IPv6 service), and path-MTU discovery across a translated flow (a Packet Too
// Big from the node about pod -> backend reaches the pod's socket as pod -> VIP), and ClientIP
// affinity (sl_affinity6, keyed by the pod's IPv6 source address), and UDP/TCP whose packets
// carry extension headers (hop-by-hop, destination options) from the pod's own kernel.
import t from 'tap';
import { loadNative } from '../../src/bpf/native.js';
import { IPV6_UNTRANSLATED_MAP, readIpv6Untranslated } from '../../src/dataplane/ipv6-untranslated.js';
import { POD_GATEWAY6 } from '../../src/testbed/topology.js';
import { ipIn, runInNetns } from '../../src/testbed/netns.js';
import { affinityKey6, affinityValue6, CT_TYPE, ctValue6, frontendKey6, IPPROTO, serviceValue } from '../../src/bpf/sluice-structs.js';
import { backendOf, clusterIpService, createBed, desiredState } from './bed.js';
import type { Attempt } from './traffic-client.js';

const VIP6 = 'fd00:96::30';
const EMPTY_VIP6 = 'fd00:96::31';
const SELF_VIP6 = 'fd00:96::32';
const TCP_PORT = 80;
const UDP_PORT = 53;
const AFFINITY_PORT = 82;
const BACKEND_PORT = 8080;
const BACKENDS = ['be0', 'be1'];

const describe = (a: Attempt | undefined): string => JSON.stringify(a);
const addrOf = (s: string | undefined): string | undefined => (s === undefined ? undefined : s.slice(0, s.lastIndexOf(':')));

const bed = await createBed(t, { pods: ['client', ...BACKENDS], ctlb: 'off', tc: true, ipv6: true });
if (bed) {
  await bed.startBackends(['client', ...BACKENDS], BACKEND_PORT, '::');
  const be6 = BACKENDS.map((n) => backendOf(bed.pod(n), BACKEND_PORT, 'IPv6'));
  const self6 = [backendOf(bed.clientPod, BACKEND_PORT, 'IPv6')];
  bed.writer.apply(desiredState(
    clusterIpService({ name: 'web', family: 'IPv6', vip: VIP6, port: TCP_PORT, protocol: 'TCP', backends: be6 }),
    clusterIpService({ name: 'dns', family: 'IPv6', vip: VIP6, port: UDP_PORT, protocol: 'UDP', backends: be6 }),
    clusterIpService({ name: 'sticky', family: 'IPv6', vip: VIP6, port: AFFINITY_PORT, protocol: 'TCP', backends: be6, affinityTimeoutSec: 60 }),
    clusterIpService({ name: 'empty', family: 'IPv6', vip: EMPTY_VIP6, port: TCP_PORT, protocol: 'TCP', backends: [] }),
    clusterIpService({ name: 'empty-udp', family: 'IPv6', vip: EMPTY_VIP6, port: UDP_PORT, protocol: 'UDP', backends: [] }),
    clusterIpService({ name: 'self', family: 'IPv6', vip: SELF_VIP6, port: TCP_PORT, protocol: 'TCP', backends: self6 }),
    clusterIpService({ name: 'self-udp', family: 'IPv6', vip: SELF_VIP6, port: UDP_PORT, protocol: 'UDP', backends: self6 }),
  ));
  const client6 = bed.clientPod.ip6;

  await t.test('TCP to an IPv6 ClusterIP through TC: the backend sees the pod, the pod sees the VIP', async (t) => {
    const results = await bed.client.tcp({ host: VIP6, port: TCP_PORT, timeoutMs: 5000 }, 10);
    for (const a of results) {
      t.ok(a.ok, `connection succeeded: ${describe(a)}`);
      t.equal(addrOf(a.peer), client6, 'the backend saw the client pod IPv6 address');
      t.equal(a.remote, `${VIP6}:${TCP_PORT}`, 'the socket is connected to the VIP');
    }
  });

  await t.test('UDP to an IPv6 ClusterIP through TC: the answer comes from the VIP', async (t) => {
    const results = await bed.client.udp({ host: VIP6, port: UDP_PORT, timeoutMs: 5000 }, 3);
    for (const a of results) {
      t.ok(a.ok, `datagram answered: ${describe(a)}`);
      t.equal(addrOf(a.peer), client6);
      t.equal(a.from, `${VIP6}:${UDP_PORT}`, 'recvfrom() reports the VIP');
    }
  });

  await t.test('the flows are in sl_ct6', async (t) => {
    const map = loadNative().openPinnedMap(`${bed.pinDir}/sl_ct6`);
    t.teardown(() => map.close());
    const forward = map.keys().map((k) => map.lookup(k)).filter((v): v is Buffer => v !== null)
      .map((v) => ctValue6.decode(v)).filter((v) => v.type === CT_TYPE.FORWARD);
    t.ok(forward.length >= 11, `${forward.length} FORWARD entries (10 TCP connections, a UDP flow)`);
  });

  await t.test('ClientIP affinity over IPv6: the pod keeps one backend; without it, flows spread', async (t) => {
    const sticky = await bed.client.tcp({ host: VIP6, port: AFFINITY_PORT, timeoutMs: 5000 }, 30);
    t.equal(sticky.filter((a) => !a.ok).length, 0, 'every connection succeeded');
    const seen = [...new Set(sticky.map((a) => a.backend))];
    t.equal(seen.length, 1, `all 30 connections went to one backend (${seen.join(',')})`);
    const native = loadNative();
    const frontends = native.openPinnedMap(`${bed.pinDir}/sl_frontends6`);
    const map = native.openPinnedMap(`${bed.pinDir}/sl_affinity6`);
    t.teardown(() => { frontends.close(); map.close(); });
    const fe = frontends.lookup(frontendKey6.encode({ addr: VIP6, port: AFFINITY_PORT, proto: IPPROTO.TCP, scope: 0 }));
    const svcId = fe ? serviceValue.decode(fe).svc_id : undefined;
    t.ok(svcId, 'the sticky port is an IPv6 frontend');
    const entry = svcId === undefined || client6 === undefined ? null : map.lookup(affinityKey6.encode({ svc_id: svcId, client_addr: client6 }));
    const aff = entry ? affinityValue6.decode(entry) : null;
    const chosen = bed.pod(seen[0] ?? '').ip6;
    t.match(aff, { backend_addr: chosen, backend_port: BACKEND_PORT }, `sl_affinity6 holds [${client6}] -> ${seen[0]} (${chosen})`);
    // Control: the same backends without affinity (two of them: 30 flows on one would be 2^-29).
    const spread = await bed.client.tcp({ host: VIP6, port: TCP_PORT, timeoutMs: 5000 }, 30);
    t.equal(new Set(spread.map((a) => a.backend)).size, BACKENDS.length, 'without affinity the pod reaches both backends');
  });

  await t.test('no endpoints and an unknown port: refused by a RST / ICMPv6 port unreachable from TC', async (t) => {
    // A timeout would mean a silent drop: the refusal must reach the socket as ECONNREFUSED.
    for (const [host, port] of [[EMPTY_VIP6, TCP_PORT], [VIP6, 81]] as const) {
      const [a] = await bed.client.tcp({ host, port, timeoutMs: 5000 });
      t.equal(a?.code, 'ECONNREFUSED', `connect() to [${host}]:${port} refused: ${describe(a)}`);
    }
    for (const [host, port] of [[EMPTY_VIP6, UDP_PORT], [VIP6, 54]] as const) {
      const [u] = await bed.client.udp({ host, port, timeoutMs: 5000 }, 1, { connected: true });
      t.equal(u?.code, 'ECONNREFUSED', `UDP to [${host}]:${port} refused (the ICMPv6 error reached the connected socket): ${describe(u)}`);
    }
  });

  await t.test('hairpin: the client pod reaching itself through an IPv6 service', async (t) => {
    const results = await bed.client.tcp({ host: SELF_VIP6, port: TCP_PORT, timeoutMs: 5000 }, 5);
    for (const a of results) {
      t.ok(a.ok, `answered: ${describe(a)}`);
      t.equal(a.backend, 'client', 'by the client pod itself');
      t.equal(addrOf(a.peer), SELF_VIP6, 'the pod (as backend) saw the VIP as its peer');
      t.equal(a.remote, `${SELF_VIP6}:${TCP_PORT}`, 'the socket is connected to the VIP');
    }
    for (const connected of [false, true]) {
      const results = await bed.client.udp({ host: SELF_VIP6, port: UDP_PORT, timeoutMs: 5000 }, 3, { connected });
      for (const a of results) {
        t.ok(a.ok, `${connected ? 'connected' : 'unconnected'} UDP answered: ${describe(a)}`);
        t.equal(a.backend, 'client', 'by the client pod itself');
        t.equal(a.from, `${SELF_VIP6}:${UDP_PORT}`, 'recvfrom() reports the VIP');
      }
    }
  });

  await t.test('extension headers: UDP behind a hop-by-hop header and TCP behind destination options are translated', async (t) => {
    // The pod's own kernel adds the headers (sticky socket options, which Node cannot set:
    // python3, installed by scripts/setup.sh). Untranslated, they would go to the VIP, which the
    // node namespace has no route for: no answer, no connection.
    const script = `
import json, socket, sys
vip, tport, uport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opt = bytes([0, 0, 1, 4, 0, 0, 0, 0])  # next header (the kernel's), 8 bytes, a PadN of 4
out = {}
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, opt)
u.settimeout(5)
u.sendto(b'exthdr', (vip, uport))
data, addr = u.recvfrom(4096)
out['udp'] = {'from': addr[0], 'port': addr[1], 'reply': json.loads(data)}
c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
c.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, opt)
c.settimeout(5)
c.connect((vip, tport))
out['tcp'] = {'remote': c.getpeername()[0], 'greeting': json.loads(c.makefile().readline())}
print(json.dumps(out))
`;
    const native = loadNative();
    const counter = native.openPinnedMap(`${bed.pinDir}/${IPV6_UNTRANSLATED_MAP}`);
    t.teardown(() => counter.close());
    const before = readIpv6Untranslated(counter, native.numPossibleCpus());
    const out = await runInNetns(bed.clientPod.ns, ['python3', '-c', script, VIP6, String(TCP_PORT), String(UDP_PORT)], { timeoutMs: 20_000 });
    const r = JSON.parse(out.stdout.trim()) as {
      udp: { from: string; port: number; reply: { pod: string; peer: { address: string }; echo: string } };
      tcp: { remote: string; greeting: { pod: string; peer: { address: string } } };
    };
    t.equal(r.udp.from, VIP6, `the UDP answer comes from the VIP: ${out.stdout.trim()}`);
    t.equal(r.udp.port, UDP_PORT);
    t.equal(r.udp.reply.echo, 'exthdr', 'echoed by a backend');
    t.ok(BACKENDS.includes(r.udp.reply.pod), `answered by a backend (${r.udp.reply.pod})`);
    t.equal(r.udp.reply.peer.address, client6, 'which saw the pod');
    t.equal(r.tcp.remote, VIP6, 'the TCP socket is connected to the VIP');
    t.ok(BACKENDS.includes(r.tcp.greeting.pod), `greeted by a backend (${r.tcp.greeting.pod})`);
    t.equal(r.tcp.greeting.peer.address, client6, 'which saw the pod');
    t.equal(readIpv6Untranslated(counter, native.numPossibleCpus()), before, 'nothing counted as untranslated');
  });

  await t.test('path MTU: a Packet Too Big about pod -> backend reaches the socket as pod -> VIP', async (t) => {
    // The node's routes to the backends get a locked MTU of 1280: a forwarded segment larger than
    // that is dropped and answered with a Packet Too Big (the backends' own MSS, from their
    // 1500-byte interfaces, does not prevent it). Untranslated, it quotes pod -> backend, matches
    // no socket, and the 20 000-byte line below never arrives (a black hole).
    for (const name of BACKENDS) {
      const p = bed.pod(name);
      await ipIn(bed.topo.nodeNs, ['-6', 'route', 'replace', `${p.ip6}/128`, 'dev', p.hostIfname, 'src', POD_GATEWAY6, 'mtu', 'lock', '1280']);
    }
    const script = `
      const s = require('node:net').connect({ host: '${VIP6}', port: ${TCP_PORT} });
      const line = 'x'.repeat(20000);
      let buf = '', greeted = false;
      const done = (r) => { console.log(JSON.stringify(r)); process.exit(0); };
      setTimeout(() => done({ ok: false, code: 'ETIMEDOUT' }), 10000);
      s.on('error', (e) => done({ ok: false, code: e.code }));
      s.on('data', (d) => {
        buf += d;
        for (let nl; (nl = buf.indexOf('\\n')) >= 0; buf = buf.slice(nl + 1)) {
          const m = JSON.parse(buf.slice(0, nl));
          if (!greeted) { greeted = true; s.write(line + '\\n'); continue; }
          done({ ok: m.echo === line, backend: m.pod, echoed: (m.echo || '').length });
        }
      });`;
    const out = await runInNetns(bed.clientPod.ns, [process.execPath, '--input-type=commonjs', '-e', script], { timeoutMs: 20_000 });
    const r = JSON.parse(out.stdout.trim()) as { ok: boolean; code?: string; backend?: string; echoed?: number };
    t.ok(r.ok, `the 20 000-byte line crossed the 1280-byte hop and came back: ${out.stdout.trim()}`);
    const route = await ipIn(bed.clientPod.ns, ['-6', 'route', 'get', VIP6]);
    t.match(route.stdout, /mtu 1280/, `the pod's kernel learnt the path MTU for the VIP: ${route.stdout.trim()}`);
  });
}
