// Text that is kept (map keys, ids, field paths) is built by join, not by a template literal.
// V8 builds a concatenation longer than 12 characters as a rope (a tree of cons strings) and
// keeps it that way: a 30-character service-port key cost ~250 bytes as a rope, ~50 flat. At
// 10,000 Services the ropes of kept keys held ~5 MB of the agent's heap.

/** The parts joined into one flat string. */
export function flatText(...parts: ReadonlyArray<string | number>): string {
  return parts.join('');
}

/**
 * The array with no spare room. An array grown by push keeps room for 17 elements (152 bytes
 * on 64-bit), whatever it holds; kept arrays that usually hold one to ten are trimmed.
 */
export function exact<T>(items: T[]): T[] {
  return items.slice();
}
