// Service-wide options: traffic policies, session affinity, health check node port. An invalid
// value is reported and the Kubernetes default is used: the Service stays reachable.
import { BAD, get, optEnum, optInt, optRecord, type ObjectReport } from './validate.js';

/** kube-proxy's default ClientIP affinity timeout (3 hours). */
export const DEFAULT_AFFINITY_TIMEOUT_SEC = 10800;
/** The API server's upper bound for sessionAffinityConfig.clientIP.timeoutSeconds (1 day). */
export const MAX_AFFINITY_TIMEOUT_SEC = 86400;

export interface ServiceOptions {
  /** internalTrafficPolicy=Local. */
  internalPolicyLocal: boolean;
  /** externalTrafficPolicy=Local (it only matters for externally accessible ports). */
  externalPolicyLocal: boolean;
  affinityTimeoutSec: number;
  healthCheckNodePort: number;
}

const POLICIES = ['Cluster', 'Local'] as const;

function policyIsLocal(r: ObjectReport, spec: unknown, key: string): boolean {
  const value = optEnum(r, get(spec, key), `spec.${key}`, POLICIES);
  return value === 'Local';
}

/** 0 = no affinity; for ClientIP the configured timeout or 10800 s. */
function affinityTimeout(r: ObjectReport, spec: unknown): number {
  const affinity = optEnum(r, get(spec, 'sessionAffinity'), 'spec.sessionAffinity', ['None', 'ClientIP'] as const);
  if (affinity !== 'ClientIP') return 0;
  const config = optRecord(r, get(spec, 'sessionAffinityConfig'), 'spec.sessionAffinityConfig');
  if (config === BAD) return DEFAULT_AFFINITY_TIMEOUT_SEC;
  const clientIp = optRecord(r, get(config, 'clientIP'), 'spec.sessionAffinityConfig.clientIP');
  if (clientIp === BAD) return DEFAULT_AFFINITY_TIMEOUT_SEC;
  const field = 'spec.sessionAffinityConfig.clientIP.timeoutSeconds';
  const timeout = optInt(r, get(clientIp, 'timeoutSeconds'), field, 1, MAX_AFFINITY_TIMEOUT_SEC);
  return timeout === BAD || timeout === undefined ? DEFAULT_AFFINITY_TIMEOUT_SEC : timeout;
}

export function parseServiceOptions(r: ObjectReport, spec: unknown, type: string): ServiceOptions {
  const internalPolicyLocal = policyIsLocal(r, spec, 'internalTrafficPolicy');
  const externalPolicyLocal = policyIsLocal(r, spec, 'externalTrafficPolicy');
  let healthCheckNodePort = 0;
  // Only a LoadBalancer Service with externalTrafficPolicy=Local has a health check (the cloud
  // load balancer probes it to find nodes with local endpoints).
  if (type === 'LoadBalancer' && externalPolicyLocal) {
    const port = optInt(r, get(spec, 'healthCheckNodePort'), 'spec.healthCheckNodePort', 0, 65535);
    healthCheckNodePort = port === BAD || port === undefined ? 0 : port;
  }
  return {
    internalPolicyLocal,
    externalPolicyLocal,
    affinityTimeoutSec: affinityTimeout(r, spec),
    healthCheckNodePort,
  };
}
