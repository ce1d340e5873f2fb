// What the healthCheckNodePort server reports, derived from the desired state.
import type { DesiredState } from './types.js';

export interface HealthCheckService {
  namespace: string;
  name: string;
  healthCheckNodePort: number;
  /** Unique IPs of this node's READY endpoints, over all ports and families of the Service. */
  localEndpoints: number;
}

/**
 * One entry per Service with a healthCheckNodePort, keyed 'namespace/name'. Terminating
 * endpoints are not ready, so a node left with only terminating endpoints reports 0 (503) and
 * the load balancer drains it while those endpoints finish their connections.
 */
export function healthCheckServices(state: DesiredState): Map<string, HealthCheckService> {
  const ips = new Map<string, Set<string>>();
  const out = new Map<string, HealthCheckService>();
  for (const port of state.services.values()) {
    if (port.healthCheckNodePort === 0) continue;
    const id = `${port.namespace}/${port.name}`;
    let set = ips.get(id);
    if (!set) {
      set = new Set();
      ips.set(id, set);
      out.set(id, { namespace: port.namespace, name: port.name, healthCheckNodePort: port.healthCheckNodePort, localEndpoints: 0 });
    }
    for (const backend of port.localBackends) if (backend.local && backend.ready) set.add(backend.ip);
  }
  for (const [id, entry] of out) entry.localEndpoints = ips.get(id)?.size ?? 0;
  return out;
}
