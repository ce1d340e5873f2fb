// Issue 12 on this machine: the real agent on a kernel that rejects connect.bpf.o (simulated by
// an object whose helper calls no kernel knows, test/helpers/broken-object.ts) keeps running:
// Services are served through the TC path, a no-endpoint Service is refused, and the start log,
// `sluicectl status` and sluice_kernel_feature say connect-time load balancing is off and why.
// The real kernels are test/boot/kernel-matrix.test.ts.
import t from 'tap';
import type { StatusView } from '../../src/admin/types.js';
import { objectDirWithRejectedConnect, UNKNOWN_HELPER } from '../helpers/broken-object.js';
import { parsePrometheus, sampleValue } from '../metrics/prom-parse.js';
import { createAgentBed, expectRefused, expectServed, nodeObject, portKey, service, slice } from './agent-bed.js';
import { ctlRaw, scrape } from './ops-helpers.js';

const VIP = '10.96.0.40';
const EMPTY_VIP = '10.96.0.41';
const HTTP = [{ name: 'http', port: 80 }];
const ADDRESS = '127.0.0.1:9965';

t.test('connect.bpf.o rejected: the agent runs on the TC path and says so', async (t) => {
  const bed = await createAgentBed(t, { source: 'manifests', tcFrom: 'client-tc' });
  if (!bed) return;
  const objects = objectDirWithRejectedConnect();
  t.teardown(objects.remove);
  await bed.writeManifest('node.yaml', [nodeObject()]);
  await bed.writeManifest('web.yaml', [service('web', VIP, HTTP), slice('web-1', 'web', ['web-a', 'web-b'], HTTP), service('empty', EMPTY_VIP, HTTP)]);
  const agent = bed.startAgent(['--bpf-dir', objects.dir, '--metrics-address', ADDRESS]);
  const status: StatusView = await bed.waitForSynced();
  t.ok(agent.running, 'the agent runs');

  const connect = status.kernel?.features.find((f) => f.name === 'connect-time-lb');
  t.match(connect, { state: 'off', reason: new RegExp(`invalid func unknown#${UNKNOWN_HELPER}`) }, 'status: connect-time-lb off, with the verifier verdict');
  t.match(status.kernel?.features.find((f) => f.name === 'tc-datapath'), { state: 'on' }, 'status: tc-datapath on');
  t.same(status.programs.filter((p) => p.hook === 'cgroup'), [], 'no cgroup attachment claimed');
  const text = await ctlRaw(bed, ['status']);
  t.match(text.stdout, /\nkernel: +\S+\n[\s\S]*\nKERNEL FEATURES\n/, 'sluicectl status has the kernel section');
  t.match(text.stdout, /connect-time-lb\s+off\s+5\.10\s+every service connection goes through the TC path/, 'and says what happens without connect-time');
  t.ok(agent.find((l) => l.level === 'warn' && /running without connect-time-lb/.test(String(l.msg))).length === 1, 'one start-up warning names the missing feature', { logs: agent.tail() });
  t.ok(agent.find((l) => l.level === 'error' && /connect-time-lb is off/.test(String(l.msg))).length === 1, 'the rejection is logged at error');

  await bed.waitForBackends(portKey('web', 'http'), ['web-a', 'web-b'], 80);
  const r = await bed.bothPaths(VIP, 80, 8);
  // The "connect-time" client's connections are translated by TC now: still served, client IP kept.
  expectServed(t, r['connect-time'], ['web-a', 'web-b'], 'client in the cgroup (TC path now)');
  expectServed(t, r.tc, ['web-a', 'web-b'], 'TC path');
  const empty = await bed.bothPaths(EMPTY_VIP, 80, 2, 1000);
  expectRefused(t, empty['connect-time'], 'no endpoints, client in the cgroup');
  expectRefused(t, empty.tc, 'no endpoints, TC path');

  const [m] = await scrape(bed.topo.nodeNs, ADDRESS, ['/metrics']);
  t.equal(m?.status, 200, '/metrics answers');
  const families = parsePrometheus(m?.body ?? '');
  t.equal(sampleValue(families, 'sluice_kernel_feature', { feature: 'connect-time-lb' }), 0, 'metric: connect-time-lb 0');
  t.equal(sampleValue(families, 'sluice_kernel_feature', { feature: 'tc-datapath' }), 1, 'metric: tc-datapath 1');
});
