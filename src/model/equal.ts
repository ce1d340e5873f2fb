// Equality of DesiredServicePorts, for the reconciler's diff. Lists are compared in order: the
// model emits them sorted, so equal state has equal order (backend lists compare their slots).
import type { DesiredServicePort, Frontend } from './types.js';

function frontendEqual(a: Frontend, b: Frontend): boolean {
  return a.kind === b.kind && a.ip === b.ip && a.port === b.port;
}

function listEqual<T>(a: readonly T[], b: readonly T[], equal: (x: T, y: T) => boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!equal(a[i] as T, b[i] as T)) return false;
  return true;
}

/** True when programming `b` over `a` would change nothing (every field compared). */
export function servicePortEqual(a: DesiredServicePort, b: DesiredServicePort): boolean {
  if (a === b) return true;
  return (
    a.key === b.key &&
    a.namespace === b.namespace &&
    a.name === b.name &&
    a.portName === b.portName &&
    a.protocol === b.protocol &&
    a.family === b.family &&
    a.internalLocal === b.internalLocal &&
    a.externalLocal === b.externalLocal &&
    a.affinityTimeoutSec === b.affinityTimeoutSec &&
    a.healthCheckNodePort === b.healthCheckNodePort &&
    listEqual(a.loadBalancerSourceRanges, b.loadBalancerSourceRanges, (x, y) => x === y) &&
    a.loadBalancerSourcesClosed === b.loadBalancerSourcesClosed &&
    listEqual(a.frontends, b.frontends, frontendEqual) &&
    a.clusterBackends.equals(b.clusterBackends) &&
    a.localBackends.equals(b.localBackends)
  );
}
