// The three object kinds Sluice consumes, with the facts every source needs about them: the
// TypeScript type, the apiVersion, the client-node model name and how objects are keyed.
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';

export type ObjectKind = 'Service' | 'EndpointSlice' | 'Node';

export const OBJECT_KINDS: readonly ObjectKind[] = ['Service', 'EndpointSlice', 'Node'];

export interface KindTypes {
  Service: V1Service;
  EndpointSlice: V1EndpointSlice;
  Node: V1Node;
}

export type KubeObject = KindTypes[ObjectKind];

export const API_VERSIONS: Readonly<Record<ObjectKind, string>> = {
  Service: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  Node: 'v1',
};

/** Nodes are cluster-scoped; the other kinds live in a namespace. */
export function isNamespaced(kind: ObjectKind): boolean {
  return kind !== 'Node';
}

export function isObjectKind(value: unknown): value is ObjectKind {
  return typeof value === 'string' && (OBJECT_KINDS as readonly string[]).includes(value);
}

/**
 * Store key of an object: 'namespace/name', or just the name for Nodes. Returns undefined when
 * the object has no name (callers report that as an error naming the source).
 */
export function objectKey(kind: ObjectKind, obj: KubeObject): string | undefined {
  const name = obj.metadata?.name;
  if (typeof name !== 'string' || name === '') return undefined;
  if (!isNamespaced(kind)) return name;
  const namespace = obj.metadata?.namespace;
  return `${typeof namespace === 'string' && namespace !== '' ? namespace : 'default'}/${name}`;
}
