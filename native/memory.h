// Giving memory back to the OS after a burst of work (the agent's full syncs).
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

}  // namespace sluice

#endif  // SLUICE_NATIVE_MEMORY_H
