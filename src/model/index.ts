// The model's public surface: pure kube-proxy semantics, no I/O.
export { computeDesiredState } from './desired-state.js';
export { servicePortEqual } from './equal.js';
export { BackendList } from './backend-list.js';
export { HealthCheckIndex, healthCheckServices, type HealthCheckService } from './health.js';
export { DEFAULT_AFFINITY_TIMEOUT_SEC } from './service-options.js';
export { LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME } from './service-filter.js';
export { LABEL_SERVICE_NAME } from './endpoint-slices.js';
export { LABEL_TOPOLOGY_ZONE } from './node.js';
export type * from './types.js';
