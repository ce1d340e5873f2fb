// BpfLink: an attachment held as a bpf_link fd. The handle is deliberately never closed by the
// garbage collector: closing the last fd of an unpinned link detaches its hook, and a hook must
// only go away because someone asked for it (detach()/close()). A collected, unclosed handle
// leaks its fd until the process exits.
#ifndef SLUICE_NATIVE_LINK_H
#define SLUICE_NATIVE_LINK_H

#include <napi.h>

namespace sluice {

class BpfLink : public Napi::ObjectWrap<BpfLink> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Creates the JS handle; takes ownership of fd.
  static Napi::Object Create(Napi::Env env, int fd);

  explicit BpfLink(const Napi::CallbackInfo& info);

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);

  int OpenFd(Napi::Env env, const char* call) const;

  int fd_ = -1;
};

// openPinnedLink(path): NativeLink
Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_LINK_H
