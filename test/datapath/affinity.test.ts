// ClientIP session affinity: a client's new flows go to the backend it had, until the timeout
// passes (simulated by moving last_used_ns into the past, not by sleeping), and never to a
// backend that left the set.
import t from 'tap';
import { IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, type Datapath } from './harness.js';

const VIP = '10.96.0.20';
const CLIENT = '10.244.1.10';
const OTHER_CLIENT = '10.244.1.11';
const BACKENDS = [
  { addr: '10.244.2.11', port: 8080 },
  { addr: '10.244.2.12', port: 8080 },
  { addr: '10.244.2.13', port: 8080 },
];
const TIMEOUT_S = 10;
const NS = 1_000_000_000n;

let nextPort = 20000;
/** Opens a new flow from client and returns the backend address it was sent to. */
function connect(dp: Datapath, client = CLIENT): string {
  const p = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: client, dst: VIP }, tcp: { sport: nextPort++, dport: 80, flags: TCP_FLAGS.SYN },
  })).parsed;
  return p.ip?.dst ?? 'none';
}

/** Makes the client's affinity entry look last used `ageS` seconds before it was. */
function age(dp: Datapath, client: string, ageS: bigint): void {
  const aff = dp.affinity(1, client);
  if (!aff) throw new Error(`no affinity entry for ${client}`);
  dp.setAffinity(1, client, { ...aff, last_used_ns: aff.last_used_ns - ageS * NS });
}

t.test('a client sticks to one backend until the affinity timeout', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({
    vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: BACKENDS,
    flags: SVC_F.AFFINITY, affinityTimeoutS: TIMEOUT_S,
  });
  const first = connect(dp);
  t.ok(BACKENDS.some((b) => b.addr === first));
  const firstUse = dp.affinity(1, CLIENT);
  t.match(firstUse, { backend_addr: first, backend_port: 8080 });
  const picks = new Set<string>();
  for (let i = 0; i < 30; i++) picks.add(connect(dp));
  t.same([...picks], [first], '30 more flows all went to the same backend');
  t.ok((dp.affinity(1, CLIENT)?.last_used_ns ?? 0n) > (firstUse?.last_used_ns ?? 0n), 'each use refreshes the entry');

  // Just inside the timeout: still pinned.
  age(dp, CLIENT, BigInt(TIMEOUT_S) - 1n);
  t.equal(connect(dp), first, 'still pinned one second before the timeout');
  // Used by another CPU after this packet read the clock (the entry's time is ahead of ours): in
  // use, not idle — an unsigned now - last would wrap to "idle for ages" (bpf/lib/clock.h).
  const aheadPicks = new Set<string>();
  for (let i = 0; i < 20; i++) {
    age(dp, CLIENT, -5n);
    aheadPicks.add(connect(dp));
  }
  t.same([...aheadPicks], [first], 'an entry last used "in the future" still pins (20 flows)');

  // Past the timeout, a fresh random choice is made (and then pinned again). Over many expiries
  // a random choice among three cannot keep landing on one backend.
  const afterExpiry = new Set<string>();
  for (let round = 0; round < 30; round++) {
    age(dp, CLIENT, BigInt(TIMEOUT_S) + 1n);
    const chosen = connect(dp);
    afterExpiry.add(chosen);
    t.equal(connect(dp), chosen, `round ${round}: the new choice is pinned`);
  }
  t.ok(afterExpiry.size > 1, `expiry lets selection choose again (${[...afterExpiry].join(', ')})`);
});

t.test('affinity is per client, only for services that ask for it, and never to a removed backend', async (t) => {
  const dp = await loadDatapath(t);
  if (!dp) return;
  dp.addService({
    vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: BACKENDS,
    flags: SVC_F.AFFINITY, affinityTimeoutS: TIMEOUT_S,
  });
  connect(dp, CLIENT);
  connect(dp, OTHER_CLIENT);
  t.ok(dp.affinity(1, CLIENT) && dp.affinity(1, OTHER_CLIENT), 'one entry per client');

  // A fresh entry pointing at a backend that is no longer in the set is ignored.
  const aff = dp.affinity(1, CLIENT);
  if (!aff) return;
  dp.setAffinity(1, CLIENT, { ...aff, backend_addr: '10.244.9.9', backend_port: 8080 });
  const chosen = connect(dp);
  t.ok(BACKENDS.some((b) => b.addr === chosen), `went to a live backend (${chosen}), not the removed one`);
  t.equal(dp.affinity(1, CLIENT)?.backend_addr, chosen, 'the entry now names the live backend');

  // Affinity switched off: flows spread again and no entry is written for a new client.
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: BACKENDS });
  const spread = new Set<string>();
  for (let i = 0; i < 60; i++) spread.add(connect(dp, CLIENT));
  t.equal(spread.size, 3, 'without the affinity flag, the client reaches every backend');
  connect(dp, '10.244.1.12');
  t.equal(dp.affinity(1, '10.244.1.12'), null, 'no affinity entry without the flag');
});
