// Recognising the addon's errors (src/bpf/native.ts NativeError) without string matching.
import type { NativeError } from './native.js';

/** True for an Error thrown or rejected by the native addon. */
export function isNativeError(err: unknown): err is NativeError {
  if (!(err instanceof Error)) return false;
  const e = err as Partial<NativeError>;
  return typeof e.code === 'string' && typeof e.errno === 'number' && typeof e.call === 'string';
}

/** True when err is a native error with one of the given codes ('ENOENT', 'EPERM', ...). */
export function hasErrnoCode(err: unknown, ...codes: string[]): err is NativeError {
  return isNativeError(err) && codes.includes(err.code);
}

/** The kernel does not implement this operation for the map/program type (or at all). */
export function isUnsupported(err: unknown): err is NativeError {
  return hasErrnoCode(err, 'ENOTSUPP', 'EOPNOTSUPP');
}

/**
 * A batch op the kernel refused before touching any element because the map type lacks it
 * (ENOTSUPP/EOPNOTSUPP): the caller may fall back to element ops.
 */
export function isBatchUnsupported(err: unknown): err is NativeError {
  return isUnsupported(err) && (err.processed ?? 0) === 0;
}

/** One-line description for logs: "bpf_map_update_elem ENOENT: <message>". */
export function describeError(err: unknown): string {
  if (isNativeError(err)) return `${err.call} ${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
