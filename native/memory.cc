// Not an N-API call: V8's own API, from the Node headers node-gyp builds against (the addon is
// rebuilt for the Node it runs on). There is no JS way to ask V8 to uncommit its heap: gc()
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

}  // namespace sluice
