// The API server source: one list/watch loop (Reflector) per kind, all writing one ObjectStore.
// Services and EndpointSlices are narrowed with kube-proxy's label selector; Nodes are all
// watched (the model needs this node's addresses and labels and the others' addresses).
import { existsSync } from 'node:fs';
import type { Logger } from 'pino';
import { KubeConfig, listCollection, Watch } from './client.js';
import { DEFAULT_BACKOFF } from './backoff.js';
import { Reflector } from './reflector.js';
import type { ListPage, ListParams, ReflectorTiming } from './reflector.js';
import type { KindTypes, ObjectKind } from './kinds.js';
import type { ObjectStore, Source } from './store.js';

export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

export const DEFAULT_TIMING: ReflectorTiming = {
  watchTimeoutSeconds: 300,
  // The API server sends a bookmark about once a minute to watches that allow them.
  idleTimeoutMs: 150_000,
  relistIntervalMs: 30 * 60_000,
  listTimeoutMs: 60_000,
  pageSize: 500,
  minHealthyWatchMs: 1_000,
  backoff: DEFAULT_BACKOFF,
};

/**
 * kube-proxy's selector: Services (and their slices) that belong to no other proxy and are not
 * headless; with a proxy name, only those labelled with that name.
 */
export function proxyLabelSelector(serviceProxyName: string): string {
  const owner = serviceProxyName === '' ? `!${LABEL_SERVICE_PROXY_NAME}` : `${LABEL_SERVICE_PROXY_NAME}=${serviceProxyName}`;
  return `${owner},!${LABEL_HEADLESS}`;
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads credentials: the given kubeconfig file; else in-cluster (service account) when running
 * in a pod; else $KUBECONFIG or ~/.kube/config. Refuses client-node's silent fallback to
 * http://localhost:8080, which would only produce confusing connection errors later.
 *
 * `apiServer` (a URL, --k8s-api-server) replaces the current cluster's server, keeping its CA and
 * credentials. In a pod the in-cluster server is KUBERNETES_SERVICE_HOST, the `kubernetes`
 * Service's ClusterIP: on a node without kube-proxy only Sluice translates it, so a starting agent
 * could reach the API server only through the maps it has yet to (re)program. The real address
 * goes nowhere near them: it is no Service frontend, so the connect-time hook passes it unchanged,
 * and the agent's traffic leaves through the host's own interfaces, not a pod veth with the TC
 * programs. The API server's certificate must name that address (use the DNS name: the EKS
 * endpoint, the AKS FQDN).
 */
export function loadKubeConfig(path: string, apiServer = ''): KubeConfig {
  const kc = new KubeConfig();
  if (path !== '') {
    kc.loadFromFile(path);
  } else if ((process.env.KUBERNETES_SERVICE_HOST || apiServer) && existsSync(SERVICE_ACCOUNT_TOKEN)) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
    if (kc.getCurrentCluster()?.server === 'http://localhost:8080' && kc.getCurrentUser()?.name === 'user') {
      throw new Error('no Kubernetes credentials: not in a pod, no $KUBECONFIG, no ~/.kube/config (use --kubeconfig or --manifests)');
    }
  }
  const current = kc.getCurrentCluster();
  if (!current) {
    throw new Error(`kubeconfig ${path || '(default)'}: current context "${kc.getCurrentContext()}" names no cluster`);
  }
  if (apiServer !== '') {
    kc.loadFromOptions({
      clusters: kc.clusters.map((c) => (c.name === current.name ? { ...c, server: apiServer } : c)),
      contexts: kc.contexts,
      users: kc.users,
      currentContext: kc.currentContext,
    });
  }
  return kc;
}

/**
 * Whether the API server is reached through the in-cluster ClusterIP (KUBERNETES_SERVICE_HOST)
 * with no override: the agent then depends on that ClusterIP being translated (by kube-proxy, or
 * by its own maps from an earlier run), which deadlocks a node without kube-proxy.
 */
export function reachesApiServerThroughClusterIp(kc: KubeConfig, apiServer: string): boolean {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  if (apiServer !== '' || !host) return false;
  try {
    return new URL(kc.getCurrentCluster()?.server ?? '').hostname.replace(/^\[|\]$/g, '') === host;
  } catch {
    return false;
  }
}

export interface KubernetesSourceOptions {
  kubeConfig: KubeConfig;
  store: ObjectStore;
  logger: Logger;
  /** service.kubernetes.io/service-proxy-name this proxy serves ('' = the default proxy). */
  serviceProxyName?: string;
  timing?: Partial<ReflectorTiming>;
  /** Randomness for jitter (tests pin it). */
  random?: () => number;
}

export class KubernetesSource implements Source {
  private readonly reflectors: Reflector<ObjectKind>[];

  constructor(opts: KubernetesSourceOptions) {
    const kc = opts.kubeConfig;
    const watch = new Watch(kc);
    const timing: ReflectorTiming = { ...DEFAULT_TIMING, ...opts.timing };
    const logger = opts.logger.child({ component: 'k8s' });
    const selector = proxyLabelSelector(opts.serviceProxyName ?? '');
    const make = <K extends ObjectKind>(kind: K, path: string, labelSelector?: string) => {
      const list = (params: ListParams, signal: AbortSignal) => listCollection(kc, path, params, signal) as Promise<ListPage<KindTypes[K]>>;
      return new Reflector<K>({ kind, path, list, labelSelector, watch, store: opts.store, logger, timing, random: opts.random });
    };
    this.reflectors = [
      make('Service', '/api/v1/services', selector),
      make('EndpointSlice', '/apis/discovery.k8s.io/v1/endpointslices', selector),
      make('Node', '/api/v1/nodes'),
    ] as Reflector<ObjectKind>[];
  }

  /** Starts every loop and returns at once; the store reports readiness (isSynced/whenSynced). */
  async start(): Promise<void> {
    for (const r of this.reflectors) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.reflectors.map((r) => r.stop()));
  }
}
