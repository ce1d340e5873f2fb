// Argument checks for calls from JS. A wrong type or range throws a JS Error with code 'EINVAL'
// that names the call, the argument and the value received; nothing here can crash the process.
#ifndef SLUICE_NATIVE_ARGS_H
#define SLUICE_NATIVE_ARGS_H

#include <napi.h>

#include <cstdint>
#include <string>

namespace sluice {

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                      const char* what);

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                                const char* what);

// An optional integer argument in [min, max]; absent/undefined gives fallback.
int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* call, const char* what,
               int64_t min, int64_t max, int64_t fallback);

// The object argument at index (required).
Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                       const char* what);

// An optional integer field of an options object, in [min, max].
int64_t IntField(Napi::Object obj, const char* field, const char* call, int64_t min, int64_t max,
                 int64_t fallback);

// An optional Buffer field; returns false when absent.
bool BufferField(Napi::Object obj, const char* field, const char* call, Napi::Buffer<uint8_t>* out);

// An optional string field; returns false when absent.
bool StringField(Napi::Object obj, const char* field, const char* call, std::string* out);

}  // namespace sluice

#endif  // SLUICE_NATIVE_ARGS_H
