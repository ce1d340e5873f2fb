// libbpf's print callback. libbpf may print from any thread (object loads run on the libuv
// pool), so the callback never touches JS: it appends to a bounded, mutex-protected queue that
// drainLog() empties on the main thread.
#ifndef SLUICE_NATIVE_LOG_H
#define SLUICE_NATIVE_LOG_H

#include <napi.h>

namespace sluice {

// Registers the callback with libbpf_set_print (once per process).
void InstallLibbpfPrint();

// drainLog(): LogLine[] — the messages collected since the last call.
Napi::Value DrainLog(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_LOG_H
