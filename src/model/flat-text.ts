// Kept text (map keys, ids, field paths) is built by join, not by a template literal, and kept
// short arrays are trimmed. The types below make that checked where it matters: the containers
// that keep such keys and arrays at 10,000 Services ask for FlatText / Exact, which only
// flatText / exact (or a named builder over them) return, so a template literal or a pushed
// array handed to them is a type error.
// Why: V8 builds a concatenation longer than 12 characters as a rope (a tree of cons strings)
// and keeps it that way: a 30-character service-port key cost ~250 bytes as a rope, ~50 flat.
// An array grown by push keeps room for 17 elements (152 bytes on 64-bit) whatever it holds.
// Measured at 10,000 Services × 10 endpoints (docs/benchmarks.md, *What each memory tactic is
// worth*): without both, the live heap after the cold start is ~7 MB larger.

declare const FLAT: unique symbol;
declare const EXACT: unique symbol;

/** A string built flat by `flatText`: what kept keys must be. */
export type FlatText = string & { readonly [FLAT]: true };

/** An array with no spare room, made by `exact`: what kept short arrays must be. */
export type Exact<T> = readonly T[] & { readonly [EXACT]: true };

/** The parts joined into one flat string. */
export function flatText(...parts: ReadonlyArray<string | number>): FlatText {
  return parts.join('') as FlatText;
}

/** The array with no spare room (a trimmed copy). */
export function exact<T>(items: readonly T[]): Exact<T> {
  return items.slice() as readonly T[] as Exact<T>;
}

/** The shared empty Exact array. */
export const NO_ITEMS: Exact<never> = exact([]);
