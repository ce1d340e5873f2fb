// The bounded backend scan (bpf/lib/lb.h, sl_set_find4): whether a remembered backend is still
// in its set is read from at most SL_SET_SCAN_MAX (128) slots. Seen through ClientIP affinity on
// the TC path: a backend absent from a set the scan covers is not honoured; in a larger set, a
// backend in the scanned slots is found, and one not found there is "unknown", which affinity
// trusts (user space removes the affinity entries of a backend it removes).
import type { Test } from 'tap';
import t from 'tap';
import { IPPROTO, SVC_F } from '../../src/bpf/sluice-structs.js';
import { buildFrame, TCP_FLAGS } from '../../src/packet/index.js';
import { loadDatapath, PROG, type Datapath } from './harness.js';

const VIP = '10.96.0.30';
const CLIENT = '10.244.1.10';
const SCAN_MAX = 128;
const GONE = { addr: '10.250.0.1', port: 8080 };

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ addr: `10.244.${2 + (i >> 8)}.${i & 255}`, port: 8080 }));

let nextPort = 30000;
function connect(dp: Datapath): string {
  const p = dp.run(PROG.FROM_POD, buildFrame({
    ip: { src: CLIENT, dst: VIP }, tcp: { sport: nextPort++, dport: 80, flags: TCP_FLAGS.SYN },
  })).parsed;
  return p.ip?.dst ?? 'none';
}

/** A service of n backends whose client is remembered with `remembered` (a fresh entry). */
async function withAffinity(t: Test, n: number, remembered: { addr: string; port: number }): Promise<Datapath | null> {
  const dp = await loadDatapath(t);
  if (!dp) return null;
  dp.addService({ vip: VIP, port: 80, proto: IPPROTO.TCP, svcId: 1, backendId: 10, cluster: backends(n), flags: SVC_F.AFFINITY, affinityTimeoutS: 60 });
  connect(dp); // creates the client's entry with a current timestamp
  const aff = dp.affinity(1, CLIENT);
  if (!aff) throw new Error('no affinity entry after a first flow');
  dp.setAffinity(1, CLIENT, { ...aff, backend_addr: remembered.addr, backend_port: remembered.port });
  return dp;
}

t.test(`a set of ${SCAN_MAX} is scanned whole: a remembered backend that left it is not honoured`, async (t) => {
  const dp = await withAffinity(t, SCAN_MAX, GONE);
  if (!dp) return;
  const chosen = connect(dp);
  t.not(chosen, GONE.addr, 'the flow is not sent to the backend that left');
  t.ok(backends(SCAN_MAX).some((b) => b.addr === chosen), `a member was chosen (${chosen})`);
});

t.test(`a set of ${SCAN_MAX + 1}: a backend in the scanned slots is found and honoured`, async (t) => {
  const member = backends(SCAN_MAX + 1)[SCAN_MAX - 1];
  if (!member) throw new Error('no member');
  const dp = await withAffinity(t, SCAN_MAX + 1, member);
  if (!dp) return;
  for (let i = 0; i < 5; i++) t.equal(connect(dp), member.addr, `flow ${i} goes to the remembered backend`);
});

t.test(`a set of ${SCAN_MAX + 1}: a backend not in the scanned slots is unknown, and affinity trusts it`, async (t) => {
  const dp = await withAffinity(t, SCAN_MAX + 1, GONE);
  if (!dp) return;
  t.equal(connect(dp), GONE.addr, 'past the bound the remembered backend is trusted');
});
