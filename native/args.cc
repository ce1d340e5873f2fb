#include "args.h"

#include <cmath>

#include "errors.h"

namespace sluice {

namespace {

std::string Describe(Napi::Value value) {
  if (value.IsUndefined()) return "undefined";
  if (value.IsNull()) return "null";
  if (value.IsBuffer()) return "a Buffer";
  if (value.IsNumber()) return value.ToString().Utf8Value();
  if (value.IsString()) return "the string '" + value.As<Napi::String>().Utf8Value() + "'";
  if (value.IsBoolean()) return value.As<Napi::Boolean>().Value() ? "true" : "false";
  return "a non-primitive value";
}

int64_t CheckInt(Napi::Env env, Napi::Value value, const char* call, const std::string& what,
                 int64_t min, int64_t max) {
  if (!value.IsNumber()) {
    throw UsageError(env, call, what + " must be an integer, got " + Describe(value));
  }
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number || number < static_cast<double>(min) ||
      number > static_cast<double>(max)) {
    throw UsageError(env, call,
                     what + " must be an integer in [" + std::to_string(min) + ", " +
                         std::to_string(max) + "], got " + Describe(value));
  }
  return static_cast<int64_t>(number);
}

}  // namespace

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                      const char* what) {
  Napi::Value value = info[index];
  if (!value.IsString()) {
    throw UsageError(info.Env(), call,
                     std::string(what) + " must be a string, got " + Describe(value));
  }
  std::string out = value.As<Napi::String>().Utf8Value();
  if (out.empty() || out.find('\0') != std::string::npos) {
    throw UsageError(info.Env(), call, std::string(what) + " must be a non-empty string");
  }
  return out;
}

Napi::Buffer<uint8_t> BufferArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                                const char* what) {
  Napi::Value value = info[index];
  if (!value.IsBuffer()) {
    throw UsageError(info.Env(), call,
                     std::string(what) + " must be a Buffer, got " + Describe(value));
  }
  return value.As<Napi::Buffer<uint8_t>>();
}

int64_t IntArg(const Napi::CallbackInfo& info, size_t index, const char* call, const char* what,
               int64_t min, int64_t max, int64_t fallback) {
  Napi::Value value = info[index];
  if (value.IsUndefined()) return fallback;
  return CheckInt(info.Env(), value, call, what, min, max);
}

Napi::Object ObjectArg(const Napi::CallbackInfo& info, size_t index, const char* call,
                       const char* what) {
  Napi::Value value = info[index];
  if (!value.IsObject() || value.IsBuffer()) {
    throw UsageError(info.Env(), call,
                     std::string(what) + " must be an object, got " + Describe(value));
  }
  return value.As<Napi::Object>();
}

int64_t IntField(Napi::Object obj, const char* field, const char* call, int64_t min, int64_t max,
                 int64_t fallback) {
  Napi::Value value = obj.Get(field);
  if (value.IsUndefined()) return fallback;
  return CheckInt(obj.Env(), value, call, field, min, max);
}

bool BufferField(Napi::Object obj, const char* field, const char* call,
                 Napi::Buffer<uint8_t>* out) {
  Napi::Value value = obj.Get(field);
  if (value.IsUndefined() || value.IsNull()) return false;
  if (!value.IsBuffer()) {
    throw UsageError(obj.Env(), call,
                     std::string(field) + " must be a Buffer, got " + Describe(value));
  }
  *out = value.As<Napi::Buffer<uint8_t>>();
  return true;
}

bool StringField(Napi::Object obj, const char* field, const char* call, std::string* out) {
  Napi::Value value = obj.Get(field);
  if (value.IsUndefined()) return false;
  if (!value.IsString()) {
    throw UsageError(obj.Env(), call,
                     std::string(field) + " must be a string, got " + Describe(value));
  }
  *out = value.As<Napi::String>().Utf8Value();
  if (out->empty() || out->find('\0') != std::string::npos) {
    throw UsageError(obj.Env(), call, std::string(field) + " must be a non-empty string");
  }
  return true;
}

}  // namespace sluice
