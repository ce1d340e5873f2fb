// Which Services this proxy programs at all. The Kubernetes watcher also narrows with a label
// selector, but the manifest source has none, so the model applies every rule itself.

export const LABEL_SERVICE_PROXY_NAME = 'service.kubernetes.io/service-proxy-name';
export const LABEL_HEADLESS = 'service.kubernetes.io/headless';

/**
 * The label side: a Service labelled headless is never proxied. A Service labelled
 * service-proxy-name belongs to the proxy of that name. The default proxy (serviceProxyName '')
 * takes only unlabelled Services, like kube-proxy; a named proxy takes only Services labelled
 * with its name (as Cilium's k8s-service-proxy-name does), so a default kube-proxy or another
 * proxy can run beside it without both programming the same Service. This is also the only
 * rule a watch label selector can express ('label=name' or '!label').
 */
export function labelsSelectService(labels: Record<string, string>, serviceProxyName: string): boolean {
  if (Object.hasOwn(labels, LABEL_HEADLESS)) return false;
  const owner = Object.hasOwn(labels, LABEL_SERVICE_PROXY_NAME) ? labels[LABEL_SERVICE_PROXY_NAME] : undefined;
  if (serviceProxyName === '') return owner === undefined;
  return owner === serviceProxyName;
}

/**
 * The spec side: ExternalName Services are DNS only; a Service whose primary cluster IP is
 * 'None' (headless) or empty has no virtual IP to proxy.
 */
export function specHasVirtualIp(type: string | undefined, primaryClusterIp: unknown): boolean {
  if (type === 'ExternalName') return false;
  // Any other value (even a malformed one) is not skipped here: parsing reports it.
  return primaryClusterIp !== undefined && primaryClusterIp !== '' && primaryClusterIp !== 'None';
}
