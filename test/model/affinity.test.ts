// KUBE-PROXY-SEMANTICS "Policies and behaviours": ClientIP session affinity and its timeout.
import t from 'tap';
import { servicePortEqual } from '../../src/model/equal.js';
import { compute, portOf, service } from './builders.js';

interface Case {
  name: string;
  spec: Record<string, unknown>;
  timeout: number;
  /** Field of the reported error, when the input is invalid. */
  errorField?: string;
}

const clientIp = (timeoutSeconds: unknown): Record<string, unknown> => ({
  sessionAffinity: 'ClientIP',
  sessionAffinityConfig: { clientIP: { timeoutSeconds } },
});
const TIMEOUT_FIELD = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds';

const cases: Case[] = [
  { name: 'no sessionAffinity: none', spec: {}, timeout: 0 },
  { name: 'sessionAffinity None: none', spec: { sessionAffinity: 'None' }, timeout: 0 },
  { name: 'None ignores a config', spec: { ...clientIp(60), sessionAffinity: 'None' }, timeout: 0 },
  { name: 'ClientIP without config: default 10800 s', spec: { sessionAffinity: 'ClientIP' }, timeout: 10800 },
  { name: 'ClientIP with empty clientIP config: default', spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: {} } }, timeout: 10800 },
  { name: 'ClientIP with timeout 60', spec: clientIp(60), timeout: 60 },
  { name: 'ClientIP with timeout 1 (minimum)', spec: clientIp(1), timeout: 1 },
  { name: 'ClientIP with timeout 86400 (maximum)', spec: clientIp(86400), timeout: 86400 },
  { name: 'timeout 0 is invalid: reported, default used', spec: clientIp(0), timeout: 10800, errorField: TIMEOUT_FIELD },
  { name: 'timeout 86401 is invalid', spec: clientIp(86401), timeout: 10800, errorField: TIMEOUT_FIELD },
  { name: 'timeout as a string is invalid', spec: clientIp('60'), timeout: 10800, errorField: TIMEOUT_FIELD },
  { name: 'fractional timeout is invalid', spec: clientIp(1.5), timeout: 10800, errorField: TIMEOUT_FIELD },
  {
    name: 'sessionAffinityConfig not an object: reported, default used',
    spec: { sessionAffinity: 'ClientIP', sessionAffinityConfig: 'yes' },
    timeout: 10800,
    errorField: 'spec.sessionAffinityConfig',
  },
  { name: 'unknown sessionAffinity: reported, no affinity', spec: { sessionAffinity: 'Cookie' }, timeout: 0, errorField: 'spec.sessionAffinity' },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const result = compute({ services: [service('web', c.spec)] });
    t.equal(portOf(result).affinityTimeoutSec, c.timeout);
    t.same(result.errors.map((e) => e.field), c.errorField ? [c.errorField] : []);
  });
}

t.test('switching affinity on, changing the timeout and switching it off are all changes', async (t) => {
  const states = [{}, { sessionAffinity: 'ClientIP' }, clientIp(30), { sessionAffinity: 'None' }].map((spec) =>
    portOf(compute({ services: [service('web', spec)] })),
  );
  const [off, on, shorter, offAgain] = states;
  if (!off || !on || !shorter || !offAgain) throw new Error('four states expected');
  t.notOk(servicePortEqual(off, on), 'on');
  t.notOk(servicePortEqual(on, shorter), 'timeout changed');
  t.notOk(servicePortEqual(shorter, offAgain), 'off');
  t.ok(servicePortEqual(off, offAgain), 'off equals off');
});

t.test('affinity applies to every port and family of the Service', async (t) => {
  const result = compute({
    services: [service('web', { ...clientIp(120), clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports: [{ name: 'a', port: 1 }, { name: 'b', port: 2, protocol: 'UDP' }] })],
    config: { families: ['IPv4', 'IPv6'] },
  });
  t.same([...result.state.services.values()].map((p) => p.affinityTimeoutSec), [120, 120, 120, 120]);
});
