// Structural checks of manifest objects, which never went through an API server: the fields the
// model reads must have the right JSON types (names are strings, ports are whole numbers in
// range, lists are arrays). Meaning (valid IPs, policies, matching ports) is the model's job.
import { API_VERSIONS, isNamespaced } from './kinds.js';
import type { ObjectKind } from './kinds.js';

export interface FieldProblem {
  /** JSON path, e.g. 'spec.ports[1].port'. */
  field: string;
  message: string;
}

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

class Checker {
  readonly problems: FieldProblem[] = [];

  problem(field: string, value: unknown, expected: string): void {
    this.problems.push({ field, message: `${expected} (got ${describe(value)})` });
  }

  /** Returns the value as a record when it is one; absent (undefined) is fine unless required. */
  object(value: unknown, field: string, required = false): Record<string, unknown> | undefined {
    if (value === undefined || (value === null && !required)) {
      if (required) this.problem(field, value, 'required object missing');
      return undefined;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.problem(field, value, 'must be an object');
      return undefined;
    }
    return value as Record<string, unknown>;
  }

  array(value: unknown, field: string, required = false): unknown[] {
    if (value === undefined || value === null) {
      if (required) this.problem(field, value, 'required list missing');
      return [];
    }
    if (!Array.isArray(value)) {
      this.problem(field, value, 'must be a list');
      return [];
    }
    return value;
  }

  string(value: unknown, field: string, opts: { required?: boolean; oneOf?: string[] } = {}): void {
    if (value === undefined || value === null) {
      if (opts.required) this.problem(field, value, 'required string missing');
      return;
    }
    if (typeof value !== 'string') return this.problem(field, value, 'must be a string');
    if (opts.oneOf && !opts.oneOf.includes(value)) this.problem(field, value, `must be one of ${opts.oneOf.join(', ')}`);
  }

  strings(value: unknown, field: string): void {
    this.array(value, field).forEach((v, i) => this.string(v, `${field}[${i}]`, { required: true }));
  }

  stringMap(value: unknown, field: string): void {
    const map = this.object(value, field);
    for (const [k, v] of Object.entries(map ?? {})) {
      if (typeof v !== 'string') this.problem(`${field}.${k}`, v, 'must be a string');
    }
  }

  integer(value: unknown, field: string, min: number, max: number, required = false): void {
    if (value === undefined || value === null) {
      if (required) this.problem(field, value, `required number (${min}-${max}) missing`);
      return;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.problem(field, value, `must be a whole number from ${min} to ${max}`);
    }
  }

  boolean(value: unknown, field: string): void {
    if (value !== undefined && value !== null && typeof value !== 'boolean') this.problem(field, value, 'must be true or false');
  }
}

export function validateManifestObject(kind: ObjectKind, obj: Record<string, unknown>): FieldProblem[] {
  const c = new Checker();
  if (obj.apiVersion !== API_VERSIONS[kind]) c.problem('apiVersion', obj.apiVersion, `must be ${API_VERSIONS[kind]} for a ${kind}`);
  const metadata = c.object(obj.metadata, 'metadata', true);
  if (metadata) {
    const name = metadata.name;
    if (typeof name !== 'string' || name === '') c.problem('metadata.name', name, 'required non-empty string');
    else if (name.length > 253 || !NAME.test(name)) c.problem('metadata.name', name, 'must be a lowercase DNS name');
    if (isNamespaced(kind) && metadata.namespace !== undefined) {
      if (typeof metadata.namespace !== 'string' || !NAME.test(metadata.namespace)) {
        c.problem('metadata.namespace', metadata.namespace, 'must be a lowercase DNS label');
      }
    }
    c.stringMap(metadata.labels, 'metadata.labels');
    c.stringMap(metadata.annotations, 'metadata.annotations');
  }
  if (kind === 'Service') checkService(c, obj);
  else if (kind === 'EndpointSlice') checkEndpointSlice(c, obj);
  else checkNode(c, obj);
  return c.problems;
}

function checkService(c: Checker, obj: Record<string, unknown>): void {
  const spec = c.object(obj.spec, 'spec', true);
  if (!spec) return;
  c.string(spec.type, 'spec.type', { oneOf: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] });
  c.string(spec.clusterIP, 'spec.clusterIP');
  c.strings(spec.clusterIPs, 'spec.clusterIPs');
  c.strings(spec.externalIPs, 'spec.externalIPs');
  c.strings(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges');
  c.strings(spec.ipFamilies, 'spec.ipFamilies');
  c.string(spec.sessionAffinity, 'spec.sessionAffinity', { oneOf: ['None', 'ClientIP'] });
  c.string(spec.externalTrafficPolicy, 'spec.externalTrafficPolicy');
  c.string(spec.internalTrafficPolicy, 'spec.internalTrafficPolicy');
  c.integer(spec.healthCheckNodePort, 'spec.healthCheckNodePort', 0, 65535);
  c.boolean(spec.allocateLoadBalancerNodePorts, 'spec.allocateLoadBalancerNodePorts');
  c.stringMap(spec.selector, 'spec.selector');
  c.array(spec.ports, 'spec.ports').forEach((raw, i) => {
    const field = `spec.ports[${i}]`;
    const port = c.object(raw, field, true);
    if (!port) return;
    c.integer(port.port, `${field}.port`, 1, 65535, true);
    c.string(port.name, `${field}.name`);
    c.string(port.protocol, `${field}.protocol`, { oneOf: PROTOCOLS });
    c.integer(port.nodePort, `${field}.nodePort`, 0, 65535);
    if (typeof port.targetPort === 'number') c.integer(port.targetPort, `${field}.targetPort`, 1, 65535);
    else c.string(port.targetPort, `${field}.targetPort`);
  });
  const clientIp = c.object(c.object(spec.sessionAffinityConfig, 'spec.sessionAffinityConfig')?.clientIP, 'spec.sessionAffinityConfig.clientIP');
  c.integer(clientIp?.timeoutSeconds, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', 1, 86400);
  const status = c.object(obj.status, 'status');
  const lb = c.object(status?.loadBalancer, 'status.loadBalancer');
  c.array(lb?.ingress, 'status.loadBalancer.ingress').forEach((raw, i) => {
    const ingress = c.object(raw, `status.loadBalancer.ingress[${i}]`, true);
    c.string(ingress?.ip, `status.loadBalancer.ingress[${i}].ip`);
    c.string(ingress?.ipMode, `status.loadBalancer.ingress[${i}].ipMode`);
  });
}

function checkEndpointSlice(c: Checker, obj: Record<string, unknown>): void {
  c.string(obj.addressType, 'addressType', { required: true, oneOf: ['IPv4', 'IPv6', 'FQDN'] });
  c.array(obj.endpoints, 'endpoints').forEach((raw, i) => {
    const field = `endpoints[${i}]`;
    const endpoint = c.object(raw, field, true);
    if (!endpoint) return;
    const addresses = c.array(endpoint.addresses, `${field}.addresses`, true);
    if (Array.isArray(endpoint.addresses) && addresses.length === 0) c.problem(`${field}.addresses`, addresses, 'needs at least one address');
    addresses.forEach((a, j) => c.string(a, `${field}.addresses[${j}]`, { required: true }));
    const conditions = c.object(endpoint.conditions, `${field}.conditions`);
    for (const name of ['ready', 'serving', 'terminating']) c.boolean(conditions?.[name], `${field}.conditions.${name}`);
    c.string(endpoint.nodeName, `${field}.nodeName`);
    c.string(endpoint.zone, `${field}.zone`);
    const hints = c.object(endpoint.hints, `${field}.hints`);
    c.array(hints?.forZones, `${field}.hints.forZones`).forEach((z, j) => {
      c.string(c.object(z, `${field}.hints.forZones[${j}]`, true)?.name, `${field}.hints.forZones[${j}].name`, { required: true });
    });
  });
  c.array(obj.ports, 'ports').forEach((raw, i) => {
    const port = c.object(raw, `ports[${i}]`, true);
    c.integer(port?.port, `ports[${i}].port`, 0, 65535);
    c.string(port?.name, `ports[${i}].name`);
    c.string(port?.protocol, `ports[${i}].protocol`, { oneOf: PROTOCOLS });
  });
}

function checkNode(c: Checker, obj: Record<string, unknown>): void {
  const spec = c.object(obj.spec, 'spec');
  c.string(spec?.podCIDR, 'spec.podCIDR');
  c.strings(spec?.podCIDRs, 'spec.podCIDRs');
  const status = c.object(obj.status, 'status');
  c.array(status?.addresses, 'status.addresses').forEach((raw, i) => {
    const address = c.object(raw, `status.addresses[${i}]`, true);
    c.string(address?.type, `status.addresses[${i}].type`, { required: true });
    c.string(address?.address, `status.addresses[${i}].address`, { required: true });
  });
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
