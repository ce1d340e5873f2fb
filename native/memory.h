// The process's memory policy (build/Release/sluice_memory.node, apart from the libbpf binding:
// see memory.cc for why): giving memory back to the OS after a burst of work, and how glibc
// keeps what the process frees.
#ifndef SLUICE_NATIVE_MEMORY_H
#define SLUICE_NATIVE_MEMORY_H

#include <napi.h>

namespace sluice {

// releaseMemory(): a full, compacting V8 collection that also uncommits the heap it frees
// (Isolate::MemoryPressureNotification, critical), then malloc_trim(0) for the C heap. Returns
// whether malloc_trim gave memory back.
Napi::Value ReleaseMemory(const Napi::CallbackInfo& info);

// limitMallocArenas(n): mallopt(M_ARENA_MAX, n), at most n glibc malloc arenas from now on.
// Returns whether glibc took it.
Napi::Value LimitMallocArenas(const Napi::CallbackInfo& info);

// mmapLargeBlocks(bytes): mallopt(M_MMAP_THRESHOLD, bytes), every block of at least `bytes`
// mapped on its own and unmapped when freed (the map batch reads' scratch buffers, megabytes at
// 10,000 Services), instead of glibc's threshold that rises after the first such free and then
// keeps them in the heap. Returns whether glibc took it.
Napi::Value MmapLargeBlocks(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_MEMORY_H
