// Small builders for the objects the k8s tests feed to the fake API server and manifest files.
export function service(name: string, opts: { namespace?: string; port?: number; labels?: Record<string, string> } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace ?? 'default', ...(opts.labels ? { labels: opts.labels } : {}) },
    spec: { clusterIP: '10.96.0.10', ports: [{ name: 'http', port: opts.port ?? 80, protocol: 'TCP' }] },
  };
}

export function endpointSlice(name: string, serviceName: string, ip = '10.1.0.5', labels: Record<string, string> = {}) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName, ...labels } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip], conditions: { ready: true }, nodeName: 'node-a' }],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export function node(name: string, ip = '192.168.0.10') {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'topology.kubernetes.io/zone': 'z1' } },
    status: { addresses: [{ type: 'InternalIP', address: ip }] },
  };
}
