// Raw JSON → the objects the store takes. Lists (src/k8s/client.ts), watch events and manifest
// files all deliver plain JSON, and it stays plain JSON: client-node's model classes (Dates for
// timestamps, class prototypes) would cost a deserialization of every object, only for the slim
// store to drop most of it. The model types (V1Service, ...) describe the same fields by the same
// names; the one difference Sluice meets is that timestamps are ISO strings, not Dates, and the
// model reads either (src/model/service-parse.ts).
import { API_VERSIONS } from './kinds.js';
import type { KindTypes, ObjectKind } from './kinds.js';

/** A raw object of `kind`, with apiVersion/kind filled in (list items lack them). */
export function asKubeObject<K extends ObjectKind>(kind: K, raw: unknown): KindTypes[K] {
  return withTypeMeta(kind, raw as KindTypes[K]);
}

/** The same object with apiVersion and kind set, so list-sourced and watch-sourced objects compare equal. */
export function withTypeMeta<K extends ObjectKind>(kind: K, obj: KindTypes[K]): KindTypes[K] {
  if (typeof obj !== 'object' || obj === null) return obj;
  if (obj.apiVersion === API_VERSIONS[kind] && obj.kind === kind) return obj;
  // Keep the prototype (a model instance from a caller stays one); never touch the input.
  const copy = Object.assign(Object.create(Object.getPrototypeOf(obj) as object) as KindTypes[K], obj);
  copy.apiVersion = API_VERSIONS[kind];
  copy.kind = kind;
  return copy;
}
