// StateTotals (src/agent/state-totals.ts): the frontend and backend-slot totals kept per service
// port equal a recount of the whole state after a full sync and after every incremental one.
import t from 'tap';
import { StateTotals } from '../../src/agent/state-totals.js';
import type { DesiredState } from '../../src/model/types.js';
import { walkRandomChanges } from '../model/random-cluster.js';

function recount(state: DesiredState): { frontends: number; backends: number } {
  let frontends = 0;
  let backends = 0;
  for (const sp of state.services.values()) {
    frontends += sp.frontends.length;
    backends += sp.clusterBackends.length + sp.localBackends.length;
  }
  return { frontends, backends };
}

t.test('incremental totals = a recount, step by step', async (t) => {
  for (const seed of [1, 2, 3]) {
    const totals = new StateTotals();
    let mismatch = '';
    let steps = 0;
    let moved = 0;
    let last = -1;
    walkRandomChanges(seed, 150, (state, changed) => {
      totals.update(state, changed);
      const want = recount(state);
      if ((totals.frontends !== want.frontends || totals.backends !== want.backends) && !mismatch) {
        mismatch = `step ${steps}: got ${totals.frontends}/${totals.backends}, want ${want.frontends}/${want.backends}`;
      }
      if (last >= 0 && want.backends !== last) moved++;
      last = want.backends;
      steps++;
    });
    t.equal(mismatch, '', `seed ${seed}: equal after each of ${steps} steps`);
    t.ok(moved > 20, `seed ${seed}: the totals moved in many steps (${moved})`);
  }
});
