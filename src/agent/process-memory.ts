// The agent process's memory beyond its own data: the C heap's arenas. glibc gives each thread
// that allocates (V8's compiler and GC helpers, libuv's pool) its own malloc arena, up to 8 per
// CPU, and an arena keeps what it once held. At 10,000 Services that was ~8 MB of the agent's
// RSS after the cold start (146 -> 138 MB measured with MALLOC_ARENA_MAX=2, the same cold start
// and change latency; docs/benchmarks.md). The environment variable acts from the process's
// first allocation: the DaemonSet sets it. Without it, the agent sets the limit itself first
// thing at start, which catches the arenas not created yet (about a third of the gain).
import { loadNative, type NativeAddon } from '../bpf/native.js';

/** The most malloc arenas the agent's process uses. */
export const MALLOC_ARENAS = 2;

/** Limits the process to MALLOC_ARENAS arenas; false when glibc refused (nothing else changes). */
export function limitMallocArenas(native: Pick<NativeAddon, 'limitMallocArenas'> = loadNative()): boolean {
  return native.limitMallocArenas(MALLOC_ARENAS);
}
