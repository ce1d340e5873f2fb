// build/Release/sluice_memory.node: the process's memory policy, a module of its own apart from
// the libbpf binding (sluice_native.node, Node-API only, ABI-stable across Node versions). This one
// is NOT ABI-stable: releaseMemory calls V8's own API, from the Node headers node-gyp builds
// against, so the module must be rebuilt for each Node major it runs on (npm run build:native
// does). The rest is glibc: mallopt and malloc_trim. There is no JS way to ask V8 to uncommit its
// heap: gc()
// (--expose-gc) collects but keeps the pages, which V8's memory reducer releases only after the
// process has been idle for a while — after a cold start at 10,000 Services, ~100 MB for tens
// of seconds.
#include "memory.h"

#include <malloc.h>
#include <v8.h>

namespace sluice {

Napi::Value ReleaseMemory(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kCritical);
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

Napi::Value LimitMallocArenas(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "limitMallocArenas: the arena count must be a number");
  }
  const double count = info[0].As<Napi::Number>().DoubleValue();
  if (!(count >= 1 && count <= 1024) || count != static_cast<int>(count)) {
    throw Napi::RangeError::New(
        env, "limitMallocArenas: the arena count must be a whole number from 1 to 1024");
  }
  return Napi::Boolean::New(env, mallopt(M_ARENA_MAX, static_cast<int>(count)) == 1);
}

Napi::Value MmapLargeBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "mmapLargeBlocks: the size must be a number");
  }
  const double bytes = info[0].As<Napi::Number>().DoubleValue();
  if (!(bytes >= 4096 && bytes <= (32 << 20)) || bytes != static_cast<int>(bytes)) {
    throw Napi::RangeError::New(env,
                                "mmapLargeBlocks: the size must be a whole number of bytes from "
                                "4096 to 33554432");
  }
  return Napi::Boolean::New(env, mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)) == 1);
}

Napi::Object InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("releaseMemory", Napi::Function::New<ReleaseMemory>(env, "releaseMemory"));
  exports.Set("limitMallocArenas",
              Napi::Function::New<LimitMallocArenas>(env, "limitMallocArenas"));
  exports.Set("mmapLargeBlocks", Napi::Function::New<MmapLargeBlocks>(env, "mmapLargeBlocks"));
  return exports;
}

}  // namespace sluice

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) { return sluice::InitMemory(env, exports); }
}  // namespace

NODE_API_MODULE(sluice_memory, Init)
