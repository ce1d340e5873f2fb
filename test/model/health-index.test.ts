// HealthCheckIndex (src/model/health.ts) gives what healthCheckServices(state) gives, after a
// full sync and after every incremental one, while Services gain, change and lose their
// healthCheckNodePort and endpoints come and go.
import t from 'tap';
import { HealthCheckIndex, healthCheckServices } from '../../src/model/health.js';
import { makeService, walkRandomChanges, type Obj } from './random-cluster.js';

/** The random cluster's Services, a third of them eTP=Local LoadBalancers with a health check port. */
function serviceWithHealthCheck(i: number, variant: number): Obj {
  const svc = makeService(i, variant);
  if ((i + variant) % 3 !== 0) return svc;
  const spec = svc['spec'] as Record<string, unknown>;
  return { ...svc, spec: { ...spec, type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 + i } };
}

t.test('incremental health-check services = healthCheckServices(state), step by step', async (t) => {
  for (const seed of [1, 2, 3]) {
    const index = new HealthCheckIndex();
    let steps = 0;
    let withChecks = 0;
    let mismatch = '';
    walkRandomChanges(seed, 120, (state, changed) => {
      const want = JSON.stringify([...healthCheckServices(state)]);
      const got = JSON.stringify([...index.services(state, changed)]);
      if (got !== want && !mismatch) mismatch = `step ${steps}: got ${got}, want ${want}`;
      withChecks += healthCheckServices(state).size > 0 ? 1 : 0;
      steps++;
    }, { service: serviceWithHealthCheck });
    t.equal(mismatch, '', `seed ${seed}: equal after each of ${steps} steps`);
    t.ok(withChecks > steps / 2, `seed ${seed}: health-check Services present in most steps (${withChecks}/${steps})`);
  }
});
