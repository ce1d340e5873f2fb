// The upgrade hand-off (bpf/lib/handoff.h, src/datapath/handoff.ts) on the real objects, with
// BPF_PROG_TEST_RUN: the regular build's TC programs run on a veth; the SL_UPGRADE_TEST_LAYOUT
// build (sl_ct_value4 one member longer) loads over the same pins, builds sl_ct4 anew and switches
// the filters. A flow the old program opens after the last copy (in the instant of the switch) is
// in the old map only: its reply and its next client segment reach the new programs, which hand
// them to the previous ones instead of letting them through untranslated. Once the upgrade
// finishes, the flow has been copied and the hand-off is over.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadNative, fromPackageRoot } from '../../src/bpf/native.js';
import { IPPROTO } from '../../src/bpf/sluice-structs.js';
import { attachTcFilters } from '../../src/datapath/attach.js';
import { Datapath } from '../../src/datapath/datapath.js';
import { HANDOFF_MAP } from '../../src/datapath/handoff.js';
import { buildFrame, checksumProblems, parseFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { addVethPair, ifindexIn, netnsPath } from '../../src/testbed/netns.js';
import { TestbedRun } from '../../src/testbed/run.js';
import { loadDatapath, PROG, TC_ACT, tupleKey } from '../datapath/harness.js';

const NEWER = fromPackageRoot('dist', 'bpf', 'upgrade-test');
const CLIENT = '10.244.1.10';
const VIP = '10.96.0.10';
const BACKEND = { addr: '10.244.2.11', port: 8080 };

const segment = (src: string, dst: string, sport: number, dport: number, flags: number) =>
  buildFrame({ ip: { src, dst }, tcp: { sport, dport, flags, seq: 1000, ack: flags & TCP_FLAGS.ACK ? 5001 : 0 } });

t.test('packets of a flow the previous build opened during the switch are handed back to it', async (t) => {
  const old = await loadDatapath(t); // the regular build, pinned maps in old.pinDir
  if (!old) return;
  t.ok(existsSync(join(NEWER, 'tc.bpf.o')), 'the upgrade-test objects are built (bpf/Makefile)');
  old.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 7, backendId: 70, cluster: [BACKEND] });
  const run = await TestbedRun.start();
  t.teardown(() => run.destroy());
  const ns = await run.netns('handoff');
  await addVethPair({ ns, name: 'vhost0', peerNs: ns, peerName: 'vpod0' });
  const target = { ifindex: await ifindexIn(ns, 'vhost0'), netns: netnsPath(ns) };
  const native = loadNative();
  const oldIds = await attachTcFilters(native, target, { ingress: old.obj.program(PROG.FROM_POD), egress: old.obj.program(PROG.TO_POD) });

  const newer = await Datapath.load({ pinDir: old.pinDir, connectTimeLb: 'disabled', objectDir: NEWER });
  t.teardown(() => newer.close());
  t.same(newer.upgradeReports.map((r) => r.map), ['sl_ct4'], 'sl_ct4 is rebuilt in the new layout (the old one set aside)');
  const newIds = await newer.attachTc(target);
  t.same(Object.fromEntries(newer.handoffSlots), oldIds, 'the switch put the previous programs in the hand-off slots');
  const runNew = (dir: 'ingress' | 'egress', frame: Buffer) => {
    const prog = native.openProgramById(newIds[dir]);
    try {
      const res = prog.testRun({ data: frame });
      return { retval: res.retval, parsed: parseFrame(res.data) };
    } finally {
      prog.close();
    }
  };

  // The old program, still running on another CPU in the instant of the switch, opens a flow
  // after the last copy: it is in the old map only.
  const opened = old.run(PROG.FROM_POD, segment(CLIENT, VIP, 40001, 80, TCP_FLAGS.SYN));
  t.match(opened.parsed.ip, { dst: BACKEND.addr }, 'the old program DNATed the SYN');
  t.ok(old.ct(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP)), 'the flow is in the old sl_ct4');
  t.equal(newer.tables.ct.get(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP)), undefined, 'and not in the new one');

  const synAck = runNew('egress', segment(BACKEND.addr, CLIENT, BACKEND.port, 40001, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
  t.equal(synAck.retval, TC_ACT.UNSPEC);
  t.match(synAck.parsed.ip, { src: VIP, dst: CLIENT }, 'its SYN-ACK, at the new to_pod, is reverse-translated (by the previous program)');
  t.match(synAck.parsed.tcp, { sport: 80, dport: 40001 });
  t.same(checksumProblems(synAck.parsed), [], 'checksums valid');
  const ack = runNew('ingress', segment(CLIENT, VIP, 40001, 80, TCP_FLAGS.ACK));
  t.match(ack.parsed.ip, { src: CLIENT, dst: BACKEND.addr }, 'the client\'s next segment, at the new from_pod, goes to the flow\'s backend');
  t.match(ack.parsed.tcp, { sport: 40001, dport: BACKEND.port });
  t.equal(newer.tables.ct.get(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP)), undefined, 'the previous programs opened nothing in the new map');
  const stray = runNew('egress', segment('10.244.9.9', CLIENT, 9999, 40002, TCP_FLAGS.ACK));
  t.match({ retval: stray.retval, ip: stray.parsed.ip }, { retval: TC_ACT.UNSPEC, ip: { src: '10.244.9.9', dst: CLIENT } }, 'a packet of no flow passes untouched, as before');
  const newSyn = runNew('ingress', segment(CLIENT, VIP, 40003, 80, TCP_FLAGS.SYN));
  t.match(newSyn.parsed.ip, { dst: BACKEND.addr }, 'a new connection is opened by the new program');
  t.ok(newer.tables.ct.get(tupleKey(CLIENT, VIP, 40003, 80, IPPROTO.TCP)), 'in the new map');

  newer.finishUpgrade();
  t.same([...newer.handoffSlots], [], 'the upgrade finished: the hand-off slots are empty');
  const handoff = newer.map(HANDOFF_MAP);
  t.teardown(() => handoff.close());
  const slot = (n: number) => { const k = Buffer.alloc(4); k.writeUInt32LE(n); return handoff.lookup(k); };
  t.same([slot(0), slot(1)], [null, null], 'sl_handoff holds no program');
  t.ok(newer.tables.ct.get(tupleKey(CLIENT, VIP, 40001, 80, IPPROTO.TCP)), 'the last copy brought the flow into the new map');
  const later = runNew('egress', segment(BACKEND.addr, CLIENT, BACKEND.port, 40001, TCP_FLAGS.ACK));
  t.match(later.parsed.ip, { src: VIP }, 'its replies are translated by the new program alone now');
  // What the old program would open now stays its own: nothing hands packets to it any more.
  old.run(PROG.FROM_POD, segment(CLIENT, VIP, 40004, 80, TCP_FLAGS.SYN));
  const orphan = runNew('egress', segment(BACKEND.addr, CLIENT, BACKEND.port, 40004, TCP_FLAGS.SYN | TCP_FLAGS.ACK));
  t.match(orphan.parsed.ip, { src: BACKEND.addr }, 'after the hand-off ended, a flow only the old map knows is not translated (the control)');
});
