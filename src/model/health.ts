// What the healthCheckNodePort server reports, derived from the desired state.
import type { DesiredServicePort, DesiredState } from './types.js';

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
  return healthCheckServicesOf(state.services.values());
}

/** healthCheckServices over some service ports (those of the Services wanted, in key order). */
function healthCheckServicesOf(ports: Iterable<DesiredServicePort>): Map<string, HealthCheckService> {
  const ips = new Map<string, Set<string>>();
  const out = new Map<string, HealthCheckService>();
  for (const port of ports) {
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

/**
 * healthCheckServices for a sync that changed only some service ports: the index of ports with a
 * healthCheckNodePort is updated from the changed keys, so a sync does not scan all 10,000
 * service ports to find the few that have one. Same result as healthCheckServices(state).
 */
export class HealthCheckIndex {
  private readonly keys = new Set<string>();

  /** `changed`: the service-port keys that may differ from the state given last; none = all. */
  services(state: DesiredState, changed?: ReadonlySet<string>): Map<string, HealthCheckService> {
    if (!changed) {
      this.keys.clear();
      for (const [key, port] of state.services) if (port.healthCheckNodePort !== 0) this.keys.add(key);
    } else {
      for (const key of changed) {
        if ((state.services.get(key)?.healthCheckNodePort ?? 0) !== 0) this.keys.add(key);
        else this.keys.delete(key);
      }
    }
    const ports: DesiredServicePort[] = [];
    for (const key of [...this.keys].sort()) {
      const port = state.services.get(key);
      if (port) ports.push(port);
    }
    return healthCheckServicesOf(ports);
  }
}
