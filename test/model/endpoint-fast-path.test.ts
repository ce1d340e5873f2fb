// parseEndpoint's plain fast path (src/model/endpoint-slices.ts) must give exactly what the
// validating reader gives — the same endpoint, the same errors — for any input, well formed or
// not. Random combinations of good, absent, null and wrong-typed fields.
import t from 'tap';
import { parseEndpoint, parseEndpointValidating } from '../../src/model/endpoint-slices.js';
import type { ModelError } from '../../src/model/types.js';
import { ObjectReport } from '../../src/model/validate.js';
import { seeded } from './random-cluster.js';

const CHOICES: Record<string, unknown[]> = {
  addresses: [undefined, null, 'x', [], ['10.0.0.1'], ['10.0.0.1', '10.0.0.2'], ['fd00::1'], ['10.0.0.01'], [5], [null]],
  conditions: [undefined, null, 'yes', [], {}, { ready: true }, { ready: 'true' }, { ready: false, serving: true, terminating: true },
    { serving: null }, { terminating: 1 }, { ready: null, serving: false }],
  nodeName: [undefined, null, '', 'node-a', 5, ['node-a']],
  zone: [undefined, null, '', 'zone-a', false],
  hints: [undefined, null, {}, { forZones: [{ name: 'zone-a' }] }, { forNodes: [{ name: 'node-a' }] }, 'bad', { forZones: [{}] }],
};

t.test('fast path = validating reader over random endpoints', async (t) => {
  const random = seeded(7);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)] as T;
  let plain = 0;
  let differ = '';
  for (let n = 0; n < 6000 && !differ; n++) {
    let raw: unknown;
    if (n % 97 === 0) raw = pick([null, 'endpoint', 7, [], undefined]);
    else {
      const o: Record<string, unknown> = {};
      for (const [field, values] of Object.entries(CHOICES)) {
        const v = pick(values);
        if (v !== undefined || random() < 0.5) o[field] = v;
      }
      raw = o;
    }
    const family = random() < 0.8 ? 'IPv4' : 'IPv6';
    const fastErrors: ModelError[] = [];
    const slowErrors: ModelError[] = [];
    const fast = parseEndpoint(new ObjectReport('EndpointSlice', 'ns/s', fastErrors), raw, n % 5, family);
    const slow = parseEndpointValidating(new ObjectReport('EndpointSlice', 'ns/s', slowErrors), raw, `endpoints[${n % 5}]`, family);
    const a = JSON.stringify({ e: fast, z: [...(fast?.zoneHints ?? [])], h: [...(fast?.nodeHints ?? [])], errors: fastErrors });
    const b = JSON.stringify({ e: slow, z: [...(slow?.zoneHints ?? [])], h: [...(slow?.nodeHints ?? [])], errors: slowErrors });
    if (a !== b) differ = `input ${JSON.stringify(raw)} (${family}): fast ${a} vs validating ${b}`;
    if (fast && fastErrors.length === 0 && fast.zoneHints === null && fast.nodeHints === null) plain++;
  }
  t.equal(differ, '', 'the same endpoint and errors for every input');
  t.ok(plain > 100, `many inputs were plain endpoints (${plain}), the fast path's case`);
});
