// 10k Services × 10 endpoints must compute well under a second: slices are indexed by Service
// once, every slice is parsed once, nothing scans all objects per Service.
import t from 'tap';
import { computeDesiredState } from '../../src/model/desired-state.js';
import { ep, input, node, NODE, service, slice } from './builders.js';

function cluster(services: number, endpointsPerService: number): ReturnType<typeof input> {
  const svcs: unknown[] = [];
  const slices: unknown[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc-${i}`;
    const ip = `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
    svcs.push(service(name, {
      type: i % 10 === 0 ? 'NodePort' : 'ClusterIP',
      clusterIP: ip,
      ports: [{ name: 'http', port: 80, ...(i % 10 === 0 ? { nodePort: 30000 + i / 10 } : {}) }],
    }));
    const endpoints = [];
    for (let k = 0; k < endpointsPerService; k++) {
      endpoints.push(ep(`10.${(i >> 8) & 255}.${i & 255}.${k + 1}`, { node: k % 3 ? `node-${k}` : NODE, zone: 'zone-a' }));
    }
    slices.push(slice(name, endpoints, { name: `${name}-x` }));
  }
  return input({ services: svcs, slices, nodes: [node(NODE, ['192.168.0.10'])] });
}

/** Best of three runs, in ms, and the last result. */
function measure(model: ReturnType<typeof input>): { best: number; runs: number[]; result: ReturnType<typeof computeDesiredState> } {
  let result = computeDesiredState(model); // warm-up: the agent recomputes on every change
  const runs: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = process.hrtime.bigint();
    result = computeDesiredState(model);
    runs.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  return { best: Math.min(...runs), runs, result };
}

t.test('10k Services × 10 endpoints: well under a second', async (t) => {
  const { best, runs, result } = measure(cluster(10_000, 10));
  t.equal(result.state.services.size, 10_000);
  t.equal([...result.state.services.values()].reduce((n, p) => n + p.clusterBackends.length, 0), 100_000);
  t.same(result.errors, []);
  // Coverage instrumentation (tap's default) slows this code about 3x; the plain bound is the
  // real requirement. Best of three filters out a neighbour's burst on a shared machine.
  // Quiet, uninstrumented runs take a few hundred ms.
  const instrumented = process.env['_TAPJS_PROCESSINFO_COVERAGE_'] === '1';
  const bound = instrumented ? 3000 : 1000;
  t.comment(`10k: ${runs.map((ms) => ms.toFixed(0)).join(', ')} ms${instrumented ? ' (coverage on)' : ''}`);
  t.ok(best < bound, `best run ${best.toFixed(0)} ms < ${bound} ms`);
});
