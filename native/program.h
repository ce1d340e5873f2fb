// BpfProgram: a loaded program (private fd): test-run, cgroup attach as a bpf_link, and one run of
// an iterator program (optionally inside another network namespace).
#ifndef SLUICE_NATIVE_PROGRAM_H
#define SLUICE_NATIVE_PROGRAM_H

#include <napi.h>

#include <cstdint>
#include <string>

namespace sluice {

struct ProgramSpec {
  int fd = -1;  // owned by the BpfProgram created from this spec
  std::string name;
  std::string section;
  uint32_t type = 0;
  uint32_t expected_attach_type = 0;
  uint32_t id = 0;
};

class BpfProgram : public Napi::ObjectWrap<BpfProgram> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Creates the JS handle; takes ownership of spec.fd.
  static Napi::Object Create(Napi::Env env, const ProgramSpec& spec);
  // The BpfProgram behind a JS value, or throws EINVAL naming `call`.
  static BpfProgram* FromValue(Napi::Env env, Napi::Value value, const char* call);

  explicit BpfProgram(const Napi::CallbackInfo& info);
  ~BpfProgram() override;

  int fd() const { return spec_.fd; }
  const std::string& name() const { return spec_.name; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value TestRun(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value RunIterator(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value MapIds(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  ProgramSpec spec_;
};

// addon.openProgramById(id): see program.cc.
Napi::Value OpenProgramById(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_PROGRAM_H
