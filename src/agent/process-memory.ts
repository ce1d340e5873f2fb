// The agent process's memory beyond its own data: the C heap's arenas. glibc gives each thread
// that allocates (V8's compiler and GC helpers, libuv's pool) its own malloc arena, up to 8 per
// CPU, and an arena keeps what it once held. At 10,000 Services one arena for all threads took
// ~10 MB off the bench child's RSS after the changes (143-137 -> 134 MB once released) and ~14
// MB off the agent process's (150 -> 138 MB), with the same cold start and change latency in
// A/B runs (docs/benchmarks.md); the agent's threads other than the main one allocate little.
// The environment variable acts from the process's first allocation: the DaemonSet sets it.
// Without it, the agent sets the limit itself first thing at start, which catches the arenas
// not created yet (part of the gain).
import { loadNative, type NativeAddon } from '../bpf/native.js';

/** The most malloc arenas the agent's process uses. */
export const MALLOC_ARENAS = 1;

/** Limits the process to MALLOC_ARENAS arenas; false when glibc refused (nothing else changes). */
export function limitMallocArenas(native: Pick<NativeAddon, 'limitMallocArenas'> = loadNative()): boolean {
  return native.limitMallocArenas(MALLOC_ARENAS);
}
