// The agent process's memory beyond its own data: the C heap's arenas. glibc gives each thread
// that allocates (V8's compiler and GC helpers, libuv's pool) its own malloc arena, up to 8 per
// CPU, and an arena keeps what it once held. At 10,000 Services one arena for all threads took
// ~10 MB off the bench child's RSS after the changes (143-137 -> 134 MB once released) and ~14
// MB off the agent process's (150 -> 138 MB), with the same cold start and change latency in
// A/B runs (docs/benchmarks.md); the agent's threads other than the main one allocate little.
// The environment variable acts from the process's first allocation: the DaemonSet sets it.
// Without it, the agent sets the limit itself first thing at start, which catches the arenas
// not created yet (part of the gain).
//
// The policy lives in build/Release/sluice_memory.node (native/memory.cc), apart from the libbpf
// binding: it calls V8's own API, so unlike sluice_native.node it is rebuilt for each Node major.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fromPackageRoot } from '../bpf/native.js';

/** build/Release/sluice_memory.node (native/memory.h). */
export interface MemoryAddon {
  /**
   * A full compacting V8 collection that uncommits the freed heap, then malloc_trim: gives a
   * burst's memory back to the OS at once (src/agent/memory-release.ts says when). Blocks the
   * thread for the collection (~100 ms at 10,000 Services). True when malloc_trim released memory.
   */
  releaseMemory(): boolean;
  /**
   * mallopt(M_ARENA_MAX, count): at most `count` glibc malloc arenas from now on. glibc gives each
   * thread that allocates its own arena (up to 8 per CPU), and each keeps what it once held.
   * True when glibc took it. Throws on a count that is not a whole number from 1 to 1024.
   */
  limitMallocArenas(count: number): boolean;
  /**
   * mallopt(M_MMAP_THRESHOLD, bytes): blocks of at least `bytes` mapped on their own and unmapped
   * when freed (the maps' batch reads allocate megabytes of scratch). Throws outside 4 KiB..32 MiB.
   */
  mmapLargeBlocks(bytes: number): boolean;
}

let cached: MemoryAddon | undefined;

/** Loads build/Release/sluice_memory.node once. */
export function loadMemoryAddon(): MemoryAddon {
  if (cached) return cached;
  const path = fromPackageRoot('build', 'Release', 'sluice_memory.node');
  if (!existsSync(path)) throw new Error(`sluice: memory addon not built (${path} missing); run \`npm run build\``);
  cached = createRequire(import.meta.url)(path) as MemoryAddon;
  return cached;
}

/** Blocks from this size on are mapped apart and go back to the OS when freed. */
export const MMAP_BLOCKS_FROM = 1 << 20;

/** The most malloc arenas the agent's process uses. */
export const MALLOC_ARENAS = 1;

/**
 * Limits the process to MALLOC_ARENAS arenas and maps blocks from MMAP_BLOCKS_FROM on apart (so
 * a large batch read's scratch goes back to the OS when freed); false when glibc refused either.
 */
export function limitMallocArenas(native: Pick<MemoryAddon, 'limitMallocArenas' | 'mmapLargeBlocks'> = loadMemoryAddon()): boolean {
  const arenas = native.limitMallocArenas(MALLOC_ARENAS);
  return native.mmapLargeBlocks(MMAP_BLOCKS_FROM) && arenas;
}
