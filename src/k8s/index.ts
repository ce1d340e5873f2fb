// The control-plane inputs: one object store fed by either the API server or a manifest directory.
import type { Logger } from 'pino';
import { KubernetesSource, loadKubeConfig } from './informers.js';
import type { ReflectorTiming } from './reflector.js';
import { ManifestSource } from './manifests.js';
import type { ObjectStore } from './store.js';

export { ObjectStore } from './store.js';
export type { Source, StoreChange, StoreSnapshot, KindCounters } from './store.js';
export { KubernetesSource, loadKubeConfig, proxyLabelSelector, DEFAULT_TIMING } from './informers.js';
export { ManifestSource } from './manifests.js';
export type { ManifestError } from './manifests.js';
export type { ObjectKind } from './kinds.js';
export { OBJECT_KINDS } from './kinds.js';

export interface SourceSettings {
  /** Read this directory instead of the API server ('' = use the API server). */
  manifestsDir: string;
  /** kubeconfig path ('' = in-cluster, $KUBECONFIG or ~/.kube/config). */
  kubeconfig: string;
  serviceProxyName: string;
  store: ObjectStore;
  logger: Logger;
  timing?: Partial<ReflectorTiming>;
}

/**
 * The source the agent's settings ask for. Throws (before anything starts) when the API server
 * credentials cannot be loaded; the caller reports that and exits.
 */
export function createSource(settings: SourceSettings): KubernetesSource | ManifestSource {
  const { store, logger } = settings;
  if (settings.manifestsDir !== '') return new ManifestSource({ dir: settings.manifestsDir, store, logger });
  return new KubernetesSource({
    kubeConfig: loadKubeConfig(settings.kubeconfig),
    store,
    logger,
    serviceProxyName: settings.serviceProxyName,
    timing: settings.timing,
  });
}

