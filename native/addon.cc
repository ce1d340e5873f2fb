// Module entry: registers the libbpf print callback and exports the NativeAddon surface
// (src/bpf/native.ts).
#include "addon.h"

#include <bpf/libbpf.h>

#include <string>

#include "errors.h"
#include "link.h"
#include "log.h"
#include "map.h"
#include "object.h"
#include "probe.h"
#include "program.h"
#include "promise_worker.h"
#include "tc.h"

namespace sluice {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

namespace {

Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), std::to_string(libbpf_major_version()) + "." +
                                           std::to_string(libbpf_minor_version()));
}

Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus < 0) throw NativeError(info.Env(), "libbpf_num_possible_cpus", "", -cpus);
  return Napi::Number::New(info.Env(), cpus);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfPrint();
  auto* data = new AddonData();
  data->object = Napi::Persistent(BpfObject::Define(env));
  data->map = Napi::Persistent(BpfMap::Define(env));
  data->program = Napi::Persistent(BpfProgram::Define(env));
  data->link = Napi::Persistent(BpfLink::Define(env));
  env.SetInstanceData(data);

  exports.Set("libbpfVersion", Napi::Function::New<LibbpfVersion>(env, "libbpfVersion"));
  exports.Set("numPossibleCpus", Napi::Function::New<NumPossibleCpus>(env, "numPossibleCpus"));
  exports.Set("openObject", Napi::Function::New<OpenObject>(env, "openObject"));
  exports.Set("openPinnedMap", Napi::Function::New<OpenPinnedMap>(env, "openPinnedMap"));
  exports.Set("openMapById", Napi::Function::New<OpenMapById>(env, "openMapById"));
  exports.Set("openPinnedLink", Napi::Function::New<OpenPinnedLink>(env, "openPinnedLink"));
  exports.Set("openProgramById", Napi::Function::New<OpenProgramById>(env, "openProgramById"));
  exports.Set("tcHookCreate",
              Napi::Function::New<RejectOnThrow<TcHookCreate>>(env, "tcHookCreate"));
  exports.Set("tcAttach", Napi::Function::New<RejectOnThrow<TcAttach>>(env, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New<RejectOnThrow<TcDetach>>(env, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New<RejectOnThrow<TcQuery>>(env, "tcQuery"));
  exports.Set("probeBpfProgType", Napi::Function::New<ProbeBpfProgType>(env, "probeBpfProgType"));
  exports.Set("probeBpfHelper", Napi::Function::New<ProbeBpfHelper>(env, "probeBpfHelper"));
  exports.Set("drainLog", Napi::Function::New<DrainLog>(env, "drainLog"));
  return exports;
}

}  // namespace

}  // namespace sluice

static Napi::Object InitSluiceNative(Napi::Env env, Napi::Object exports) {
  return sluice::Init(env, exports);
}

NODE_API_MODULE(sluice_native, InitSluiceNative)
