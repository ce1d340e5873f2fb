// libbpf answers 1 (supported), 0 (not supported) or a negative errno (it could not tell, e.g.
// EPERM without CAP_BPF): the last one is thrown, so "no" is never mistaken for "could not ask".
#include "probe.h"

#include <bpf/libbpf.h>

#include <string>

#include "errors.h"

namespace sluice {

namespace {

int ArgU32(const Napi::CallbackInfo& info, size_t i, const char* call, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw UsageError(info.Env(), call, std::string(what) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 0x7fffffff || v != static_cast<double>(static_cast<int>(v))) {
    throw UsageError(info.Env(), call, std::string(what) + " must be a non-negative integer");
  }
  return static_cast<int>(v);
}

}  // namespace

Napi::Value ProbeBpfProgType(const Napi::CallbackInfo& info) {
  const char* call = "libbpf_probe_bpf_prog_type";
  int type = ArgU32(info, 0, call, "progType");
  int ret = libbpf_probe_bpf_prog_type(static_cast<enum bpf_prog_type>(type), nullptr);
  if (ret < 0) throw NativeError(info.Env(), call, "prog type " + std::to_string(type), -ret);
  return Napi::Boolean::New(info.Env(), ret == 1);
}

Napi::Value ProbeBpfHelper(const Napi::CallbackInfo& info) {
  const char* call = "libbpf_probe_bpf_helper";
  int type = ArgU32(info, 0, call, "progType");
  int helper = ArgU32(info, 1, call, "helperId");
  int ret = libbpf_probe_bpf_helper(static_cast<enum bpf_prog_type>(type),
                                    static_cast<enum bpf_func_id>(helper), nullptr);
  if (ret < 0) {
    throw NativeError(info.Env(), call,
                      "helper " + std::to_string(helper) + " for prog type " + std::to_string(type),
                      -ret);
  }
  return Napi::Boolean::New(info.Env(), ret == 1);
}

}  // namespace sluice
