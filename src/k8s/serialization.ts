// Raw JSON → client-node model objects. Typed list calls return model instances (Dates for
// timestamps, class prototypes), but watch events and manifest files are plain JSON; every
// object entering the store goes through the same deserializer so both paths agree.
//
// client-node 1.x does not export its ObjectSerializer from the package root; the package has no
// "exports" map, so the deep import is allowed. test/k8s/serialization.test.ts fails loudly if
// an upgrade moves it.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';
import { API_VERSIONS, MODEL_NAMES } from './kinds.js';
import type { KindTypes, ObjectKind } from './kinds.js';

/** Deserializes a raw object of `kind` and fills in apiVersion/kind (list items lack them). */
export function toModel<K extends ObjectKind>(kind: K, raw: unknown): KindTypes[K] {
  const model = ObjectSerializer.deserialize(raw, MODEL_NAMES[kind], '') as KindTypes[K];
  return withTypeMeta(kind, model);
}

/** The same object with apiVersion and kind set, so list-sourced and watch-sourced objects compare equal. */
export function withTypeMeta<K extends ObjectKind>(kind: K, obj: KindTypes[K]): KindTypes[K] {
  if (obj.apiVersion === API_VERSIONS[kind] && obj.kind === kind) return obj;
  // Keep the model's prototype: spread would turn it into a plain object.
  const copy = Object.assign(Object.create(Object.getPrototypeOf(obj) as object) as KindTypes[K], obj);
  copy.apiVersion = API_VERSIONS[kind];
  copy.kind = kind;
  return copy;
}
