// Reading untrusted Kubernetes objects. Objects from a manifest file never went through an API
// server, so any field may be missing, null or of the wrong type. Readers never throw: a bad
// field becomes a ModelError naming kind, namespace/name, field path and value, and the reader
// returns BAD so the caller skips just what depends on that field.
import { flatText } from './flat-text.js';
import type { ModelError } from './types.js';

export const BAD: unique symbol = Symbol('bad field');
export type Bad = typeof BAD;

const MAX_VALUE_TEXT = 200;

/** JSON-ish text of a value for messages; never throws (cycles, BigInt), bounded length. */
export function describeValue(value: unknown): string {
  let text: string;
  try {
    text = value === undefined ? 'undefined' : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > MAX_VALUE_TEXT ? `${text.slice(0, MAX_VALUE_TEXT)}…` : text;
}

/** Collects the errors of one object: kind ('Service', …) and 'namespace/name'. */
export class ObjectReport {
  constructor(
    readonly kind: string,
    readonly object: string,
    private sink: ModelError[],
  ) {}

  /** Sends this object's later errors elsewhere (the incremental model keeps them per stage). */
  redirect(sink: ModelError[]): void {
    this.sink = sink;
  }

  error(field: string, value: unknown, problem: string): Bad {
    this.sink.push({
      kind: this.kind,
      object: this.object,
      field,
      value,
      message: `${this.kind} ${this.object}: ${field}: ${problem} (got ${describeValue(value)})`,
    });
    return BAD;
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** obj[key] when obj is an object, else undefined. */
export function get(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function absent(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

export function optString(r: ObjectReport, value: unknown, field: string): string | undefined | Bad {
  if (absent(value)) return undefined;
  return typeof value === 'string' ? value : r.error(field, value, 'must be a string');
}

export function optBool(r: ObjectReport, value: unknown, field: string): boolean | undefined | Bad {
  if (absent(value)) return undefined;
  return typeof value === 'boolean' ? value : r.error(field, value, 'must be true or false');
}

export function optInt(
  r: ObjectReport,
  value: unknown,
  field: string,
  min: number,
  max: number,
): number | undefined | Bad {
  if (absent(value)) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    return r.error(field, value, `must be an integer in ${min}..${max}`);
  }
  return value;
}

export function optArray(r: ObjectReport, value: unknown, field: string): unknown[] | undefined | Bad {
  if (absent(value)) return undefined;
  return Array.isArray(value) ? value : r.error(field, value, 'must be a list');
}

export function optRecord(
  r: ObjectReport,
  value: unknown,
  field: string,
): Record<string, unknown> | undefined | Bad {
  if (absent(value)) return undefined;
  return isRecord(value) ? value : r.error(field, value, 'must be an object');
}

export function optEnum<T extends string>(
  r: ObjectReport,
  value: unknown,
  field: string,
  allowed: readonly T[],
): T | undefined | Bad {
  if (absent(value)) return undefined;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  return r.error(field, value, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
}

/** metadata.labels as string→string; a non-string value is an error for the whole map. */
export function optLabels(r: ObjectReport, metadata: unknown): Record<string, string> | Bad {
  const labels = optRecord(r, get(metadata, 'labels'), 'metadata.labels');
  if (labels === BAD) return BAD;
  if (!labels) return {};
  for (const [key, value] of Object.entries(labels)) {
    if (typeof value !== 'string') return r.error(`metadata.labels['${key}']`, value, 'must be a string');
  }
  return labels as Record<string, string>;
}

/** Namespace and name of an object, for error reports before the object is validated. */
export function objectIdentity(obj: unknown): { namespace: string; name: string } {
  const metadata = get(obj, 'metadata');
  const namespace = get(metadata, 'namespace');
  const name = get(metadata, 'name');
  return {
    // Manifests may omit the namespace: like kubectl, that means 'default'.
    namespace: typeof namespace === 'string' && namespace !== '' ? namespace : 'default',
    name: typeof name === 'string' ? name : '',
  };
}

/** A report for one object, after checking it is an object with a non-empty string name. */
export function openObject(
  kind: string,
  obj: unknown,
  where: string,
  sink: ModelError[],
): { report: ObjectReport; namespace: string; name: string } | null {
  const { namespace, name } = objectIdentity(obj);
  const report = new ObjectReport(kind, name ? flatText(namespace, '/', name) : where, sink);
  if (!isRecord(obj)) {
    report.error('', obj, `${kind} must be an object`);
    return null;
  }
  const namespaceValue = get(get(obj, 'metadata'), 'namespace');
  if (!absent(namespaceValue) && typeof namespaceValue !== 'string') {
    report.error('metadata.namespace', namespaceValue, 'must be a string');
    return null;
  }
  if (!name) {
    report.error('metadata.name', get(get(obj, 'metadata'), 'name'), 'must be a non-empty string');
    return null;
  }
  return { report, namespace, name };
}

/**
 * Runs the work for one object; an exception (a model bug, or an input object with a throwing
 * getter) costs that object only and is reported, never the whole state nor the agent.
 */
export function guarded<T>(sink: ModelError[], kind: string, raw: unknown, fallback: T, work: () => T): T {
  try {
    return work();
  } catch (err) {
    let where = '?';
    try {
      const { namespace, name } = objectIdentity(raw);
      where = `${namespace}/${name}`;
    } catch {
      // The identity itself is unreadable: keep '?'.
    }
    new ObjectReport(kind, where, sink).error('', undefined, `internal model error: ${String(err)}`);
    return fallback;
  }
}
