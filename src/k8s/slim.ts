// What the store keeps of each object: only the fields Sluice reads, as plain objects with
// exact-size arrays and shared copies of the strings that repeat across objects (namespaces, node
// names, zones, protocols, port names, labels). A client-node model object carries an explicit
// member for every absent field, arrays grown by push (room for 17 elements), and fields nobody
// here reads — an endpoint's targetRef and uid, owner references, a Node's images and conditions.
// At 10,000 Services × 10 endpoints that was ~75 MB of the agent's heap; slim, it is a fraction.
//
// Values are copied as they are, never checked or converted: a malformed field stays malformed,
// so the model still reports it by its path and value. Dropped fields are ones the model, the
// writer and the admin socket never read; a field added to the model must be added here (the
// differential test in test/k8s/slim.test.ts runs the model on both forms).
import { API_VERSIONS } from './kinds.js';
import type { KindTypes, ObjectKind } from './kinds.js';

/**
 * How a field is kept: 'keep' copies the value (strings as they are), 'strings' copies it with
 * every string through the pool, 'shared' is one frozen copy per distinct value, an object
 * shape keeps only the fields it names ('*' stands for every other field), `{ each }` applies a
 * shape to every element of an array, 'drop' leaves the field out.
 */
type Shape = 'keep' | 'strings' | 'shared' | 'drop' | { each: Shape } | { [field: string]: Shape };

const METADATA = { name: 'keep', namespace: 'shared', labels: 'strings', resourceVersion: 'keep' } as const;

const SHAPES: Readonly<Record<ObjectKind, Shape>> = {
  Service: {
    // The oldest Service keeps a contested address (conflict settling).
    metadata: { ...METADATA, creationTimestamp: 'keep' },
    // Everything but the pod selector: the endpoints come from EndpointSlices.
    spec: {
      '*': 'keep', selector: 'drop', ports: 'shared', type: 'shared', sessionAffinity: 'shared',
      externalTrafficPolicy: 'shared', internalTrafficPolicy: 'shared', ipFamilies: 'shared', ipFamilyPolicy: 'shared',
    },
    status: { loadBalancer: 'keep' },
  },
  EndpointSlice: {
    metadata: METADATA,
    addressType: 'shared',
    ports: 'shared',
    endpoints: {
      // No targetRef (the pod), hostname or deprecatedTopology.
      each: { addresses: 'keep', conditions: 'shared', nodeName: 'shared', zone: 'shared', hints: 'shared' },
    },
  },
  Node: {
    metadata: { name: 'keep', labels: 'strings', resourceVersion: 'keep' },
    // Addresses only: conditions and images change on every heartbeat and are never read.
    status: { addresses: 'shared' },
  },
};

/**
 * Shared copies of what repeats across objects: strings, and small JSON values ('shared'
 * fields: an endpoint's conditions, a slice's ports, hints, a Node's addresses), which are
 * frozen, since many objects hold the same one. Bounded: past `limit` entries a table starts over.
 */
export class SlimPool {
  private readonly strings = new Map<string, string>();
  private readonly values = new Map<string, unknown>();

  constructor(private readonly limit = 100_000) {}

  get size(): number {
    return this.strings.size + this.values.size;
  }

  intern(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    if (this.strings.size >= this.limit) this.strings.clear();
    this.strings.set(s, s);
    return s;
  }

  /** One frozen copy per distinct JSON value (objects and arrays); other values as they are. */
  share(value: unknown): unknown {
    const copy = copyValue(value, (s) => this.intern(s));
    if (typeof copy !== 'object' || copy === null || !isJsonPure(copy)) return copy;
    const text = JSON.stringify(copy);
    // Big values rarely repeat: not worth a table entry.
    if (text.length > 512) return copy;
    const known = this.values.get(text);
    if (known !== undefined) return known;
    if (this.values.size >= this.limit) this.values.clear();
    deepFreeze(copy);
    this.values.set(text, copy);
    return copy;
  }
}

/** Only what JSON round-trips exactly (no Date, undefined or non-finite number): JSON text is then its identity. */
function isJsonPure(value: unknown): boolean {
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isJsonPure);
  if (isPlainRecord(value)) return Object.values(value).every(isJsonPure);
  return false;
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  for (const v of Object.values(value)) deepFreeze(v);
  Object.freeze(value);
}

const identity = (s: string): string => s;

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A deep copy: arrays at their exact size, undefined members left out, strings through `str`. */
function copyValue(value: unknown, str: (s: string) => string): unknown {
  if (typeof value === 'string') return str(value);
  if (Array.isArray(value)) {
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = copyValue(value[i], str);
    return out;
  }
  if (!isPlainRecord(value)) return value; // numbers, booleans, null, Dates (immutable here)
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (v !== undefined) out[str(key)] = copyValue(v, str);
  }
  return out;
}

function slimValue(value: unknown, shape: Shape, pool: SlimPool): unknown {
  if (shape === 'keep') return copyValue(value, identity);
  if (shape === 'strings') return copyValue(value, (s) => pool.intern(s));
  if (shape === 'shared') return pool.share(value);
  if (shape === 'drop') return undefined;
  if ('each' in shape && Object.keys(shape).length === 1) {
    const each = shape.each as Shape;
    // A value of the wrong type is kept as it is, for the model to report.
    if (!Array.isArray(value)) return copyValue(value, identity);
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) out[i] = slimValue(value[i], each, pool);
    return out;
  }
  if (!isPlainRecord(value)) return copyValue(value, identity);
  return slimFields(value, shape as Record<string, Shape>, pool, {});
}

/** The fields of `value` that `fields` keeps, slimmed, added to `out`. */
function slimFields(value: Record<string, unknown>, fields: Record<string, Shape>, pool: SlimPool, out: Record<string, unknown>): Record<string, unknown> {
  const rest = fields['*'];
  for (const key of Object.keys(value)) {
    if (Object.hasOwn(out, key)) continue;
    const v = value[key];
    if (v === undefined) continue;
    const fieldShape = Object.hasOwn(fields, key) ? fields[key] : rest;
    if (fieldShape === undefined || fieldShape === 'drop') continue;
    out[pool.intern(key)] = slimValue(v, fieldShape, pool);
  }
  return out;
}

/**
 * The slim form of `obj`: a new plain object (the argument is not modified), with apiVersion and
 * kind set (list items come without them) and first, so every object of a kind has one shape.
 */
export function slimObject<K extends ObjectKind>(kind: K, obj: KindTypes[K], pool: SlimPool): KindTypes[K] {
  if (!isPlainRecord(obj)) return copyValue(obj, identity) as KindTypes[K];
  const typeMeta = { apiVersion: pool.intern(API_VERSIONS[kind]), kind: pool.intern(kind) };
  return slimFields(obj, SHAPES[kind] as Record<string, Shape>, pool, typeMeta) as unknown as KindTypes[K];
}
