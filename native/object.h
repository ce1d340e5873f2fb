// BpfObject: one ELF object from open to close. Configuration (rodata, map sizes) happens between
// open and load; load() runs on the libuv pool; maps and programs are then handed out as
// handles that own duplicated fds, so they outlive close() of the object safely.
#ifndef SLUICE_NATIVE_OBJECT_H
#define SLUICE_NATIVE_OBJECT_H

#include <bpf/libbpf.h>
#include <napi.h>

#include <string>

namespace sluice {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  enum class State { kOpened, kLoading, kLoaded, kFailed, kClosed };

  static Napi::Function Define(Napi::Env env);

  // new BpfObject(path, { pinRoot? }) opens the file (bpf_object__open_file).
  explicit BpfObject(const Napi::CallbackInfo& info);
  ~BpfObject() override;

  // Called by the load worker on the main thread.
  void FinishLoad(bool ok) { state_ = ok ? State::kLoaded : State::kFailed; }

 private:
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value SetRodata(const Napi::CallbackInfo& info);
  Napi::Value RodataVariables(const Napi::CallbackInfo& info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);  // object_load.cc
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value Program(const Napi::CallbackInfo& info);
  Napi::Value LoadedProgram(const Napi::CallbackInfo& info);
  Napi::Value MapInitialValue(const Napi::CallbackInfo& info);
  Napi::Value BtfStruct(const Napi::CallbackInfo& info);
  Napi::Value BtfEnum(const Napi::CallbackInfo& info);
  Napi::Value MapBtfLayout(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  // The libbpf object, or throws (closed: EBADF, loading: EBUSY).
  bpf_object* Usable(Napi::Env env, const char* call) const;
  // Throws unless the object is opened and not yet loaded (configuration phase).
  bpf_object* Configurable(Napi::Env env, const char* call) const;
  // Throws unless loaded.
  bpf_object* Loaded(Napi::Env env, const char* call) const;

  bpf_object* obj_ = nullptr;
  std::string path_;
  State state_ = State::kOpened;
};

// openObject(path, opts?): NativeObject
Napi::Value OpenObject(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_OBJECT_H
