// ClientIP session affinity over IPv6 on the TC path (BPF_PROG_TEST_RUN on the real tc.bpf.o):
// a client's new flows keep the backend it had (sl_affinity6, keyed by the whole 128-bit source
// address) until the timeout passes — simulated by moving last_used_ns into the past, not by
// sleeping — other clients choose for themselves, a remembered backend that left the set is
// never used, and without the affinity flag flows spread and no entry is written.
import t, { type Test } from 'tap';
import { IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame6, parseFrame6, TCP6_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, TC_ACT, type Datapath } from './harness.js';
import { addService6, affinity6, ct6, setAffinity6, type Service6 } from './harness6.js';

const VIP = 'fd00:96::20';
const CLIENT = 'fd00:10:244::a';
const BACKENDS = [
  { addr: 'fd00:10:244::1f', port: 8080 },
  { addr: 'fd00:10:244::20', port: 8080 },
  { addr: 'fd00:10:244::21', port: 8080 },
];
const SVC_ID = 3;
const TIMEOUT_S = 10;
const NS = 1_000_000_000n;
const service = (affinity: boolean): Service6 => ({
  vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: SVC_ID, backendId: 30, cluster: BACKENDS,
  ...(affinity ? { flags: SVC_F.AFFINITY, affinityTimeoutS: TIMEOUT_S } : {}),
});

let nextPort = 20000;
/** Opens a new TCP flow from client to the VIP and returns the backend it was DNATed to. */
function connect(t: Test, dp: Datapath, client = CLIENT): string {
  const sport = nextPort++;
  const out = dp.run(PROG.FROM_POD, buildFrame6({ src: client, dst: VIP, tcp: { sport, dport: 80, flags: TCP6_FLAGS.SYN } }));
  const got = parseFrame6(out.data);
  if (out.retval !== TC_ACT.UNSPEC || !got.checksumOk) t.fail(`flow from ${client}:${sport} not translated cleanly (retval ${out.retval})`);
  // The flow's conntrack entry names the backend the packet went to: the choice is the flow's.
  if (ct6(dp, client, VIP, sport, 80, IPPROTO.TCP)?.nat_addr !== got.dst) t.fail(`sl_ct6 disagrees with the packet for ${client}:${sport}`);
  return got.dst;
}

/** Makes the client's affinity entry look last used `ageS` seconds earlier than it was. */
function age(dp: Datapath, client: string, ageS: bigint): void {
  const aff = affinity6(dp, SVC_ID, client);
  if (!aff) throw new Error(`no sl_affinity6 entry for ${client}`);
  setAffinity6(dp, SVC_ID, client, { ...aff, last_used_ns: aff.last_used_ns - ageS * NS });
}

t.test('an IPv6 client sticks to one backend until the affinity timeout', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, service(true));
  const first = connect(t, dp);
  t.ok(BACKENDS.some((b) => b.addr === first), `the first flow went to a backend (${first})`);
  const firstUse = affinity6(dp, SVC_ID, CLIENT);
  t.match(firstUse, { backend_addr: first, backend_port: 8080 }, 'sl_affinity6 remembers it, keyed by the client address');
  const picks = new Set<string>();
  for (let i = 0; i < 30; i++) picks.add(connect(t, dp));
  t.same([...picks], [first], '30 more flows all went to the same backend');
  t.ok((affinity6(dp, SVC_ID, CLIENT)?.last_used_ns ?? 0n) > (firstUse?.last_used_ns ?? 0n), 'each use refreshes the entry');

  age(dp, CLIENT, BigInt(TIMEOUT_S) - 1n);
  t.equal(connect(t, dp), first, 'still pinned one second before the timeout');
  // Used by another CPU after this packet read the clock: in use, not idle (bpf/lib/clock.h).
  const aheadPicks = new Set<string>();
  for (let i = 0; i < 20; i++) {
    age(dp, CLIENT, -5n);
    aheadPicks.add(connect(t, dp));
  }
  t.same([...aheadPicks], [first], 'an entry last used "in the future" still pins (20 flows)');

  // Past the timeout a fresh random choice is made and pinned again; over many expiries a random
  // choice among three cannot keep landing on one backend.
  const afterExpiry = new Set<string>();
  for (let round = 0; round < 30; round++) {
    age(dp, CLIENT, BigInt(TIMEOUT_S) + 1n);
    const chosen = connect(t, dp);
    afterExpiry.add(chosen);
    t.equal(connect(t, dp), chosen, `round ${round}: the new choice is pinned`);
  }
  t.ok(afterExpiry.size > 1, `expiry lets selection choose again (${[...afterExpiry].join(', ')})`);
});

t.test('IPv6 affinity is per client address, never to a removed backend, and only when asked for', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  addService6(dp, service(true));

  // Clients that differ only in the upper or only in the lower 64 bits are different clients:
  // the key is the whole address (connect time folds a netns cookie into ::/64 instead).
  const clients = Array.from({ length: 20 }, (_, i) => `fd00:10:${300 + i}::a`)
    .concat(Array.from({ length: 20 }, (_, i) => `fd00:10:244::${(0x100 + i).toString(16)}`));
  const pinned = new Map<string, string>();
  for (const c of clients) pinned.set(c, connect(t, dp, c));
  for (const c of clients) {
    t.match(affinity6(dp, SVC_ID, c), { backend_addr: pinned.get(c) }, `${c} has an entry of its own`);
    t.equal(connect(t, dp, c), pinned.get(c), `${c} keeps its backend`);
  }
  t.ok(new Set(pinned.values()).size > 1, `other clients get other backends (${[...new Set(pinned.values())].join(', ')})`);

  // A fresh entry naming a backend that is no longer in the set is ignored and replaced.
  const aff = affinity6(dp, SVC_ID, CLIENT) ?? (connect(t, dp), affinity6(dp, SVC_ID, CLIENT));
  if (!aff) return t.fail('no entry for the client');
  setAffinity6(dp, SVC_ID, CLIENT, { ...aff, backend_addr: 'fd00:10:244::99', backend_port: 8080 });
  const chosen = connect(t, dp);
  t.ok(BACKENDS.some((b) => b.addr === chosen), `went to a live backend (${chosen}), not the removed one`);
  t.equal(affinity6(dp, SVC_ID, CLIENT)?.backend_addr, chosen, 'the entry now names the live backend');

  // Control: the same service without the affinity flag spreads one client's flows, and writes
  // no entry for a new client.
  addService6(dp, service(false));
  const spread = new Set<string>();
  for (let i = 0; i < 60; i++) spread.add(connect(t, dp, CLIENT));
  t.equal(spread.size, BACKENDS.length, 'without the affinity flag, the client reaches every backend');
  connect(t, dp, 'fd00:10:244::77');
  t.equal(affinity6(dp, SVC_ID, 'fd00:10:244::77'), null, 'no sl_affinity6 entry without the flag');
});
