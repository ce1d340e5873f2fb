// The parts of @kubernetes/client-node the agent runs: KubeConfig (kubeconfig files, in-cluster
// service account, TLS, token, exec and OIDC auth) and Watch, each from its own module, and a
// plain list call made the way Watch makes its requests (the same fetch, the same auth).
//
// Not the package root: it loads the whole generated API (see lean-client.ts), and client-node's
// typed list calls deserialize every object into model classes (Dates, prototypes) that the slim
// store then throws away. Lists and watches both deliver raw JSON here, so every object reaches the store in
// the same shape (timestamps stay strings; src/model reads either).
import { createRequire } from 'node:module';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { ListPage, ListParams } from './reflector.js';

export { KubeConfig, Watch };

interface FetchResponse {
  status: number;
  statusText: string;
  text(): Promise<string>;
}
type Fetch = (url: URL, init: Record<string, unknown>) => Promise<FetchResponse>;

// node-fetch is client-node's dependency (Watch uses it; applyToFetchOptions builds its options,
// https agent included), resolved from client-node's location as yaml.ts resolves js-yaml.
const requireFromClient = createRequire(import.meta.resolve('@kubernetes/client-node'));
const fetch = requireFromClient('node-fetch') as Fetch;

/** A failed list: statusCode and body as describeError and httpStatusOf read them. */
export class ListError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
    readonly body: string,
  ) {
    super(message);
    this.name = 'ListError';
  }
}

/** One page of a collection (e.g. /api/v1/services) as raw JSON; `signal` aborts the request. */
export async function listCollection(kc: KubeConfig, path: string, params: ListParams, signal: AbortSignal): Promise<ListPage<unknown>> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig names no current cluster');
  const url = new URL(cluster.server + path);
  if (params.labelSelector) url.searchParams.set('labelSelector', params.labelSelector);
  if (params.limit) url.searchParams.set('limit', String(params.limit));
  if (params._continue) url.searchParams.set('continue', params._continue);
  if (params.timeoutSeconds) url.searchParams.set('timeoutSeconds', String(params.timeoutSeconds));
  const init = (await kc.applyToFetchOptions({})) as Record<string, unknown>;
  init.method = 'GET';
  init.signal = signal;
  const response = await fetch(url, init);
  const body = await response.text();
  if (response.status !== 200) throw new ListError(`list ${path}: HTTP ${response.status} ${response.statusText}`, response.status, body);
  const page = JSON.parse(body) as { items?: unknown; metadata?: { resourceVersion?: string; continue?: string } };
  if (!Array.isArray(page.items)) throw new Error(`list ${path}: the answer has no items list`);
  const metadata: ListPage<unknown>['metadata'] = {};
  if (page.metadata?.resourceVersion !== undefined) metadata.resourceVersion = page.metadata.resourceVersion;
  if (page.metadata?.continue) metadata._continue = page.metadata.continue;
  return { items: page.items as unknown[], metadata };
}
