#include "link.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "fd_util.h"
#include "program.h"

namespace sluice {

Napi::Function BpfLink::Define(Napi::Env env) {
  return DefineClass(env, "BpfLink",
                     {
                         InstanceAccessor<&BpfLink::Fd>("fd"),
                         InstanceMethod<&BpfLink::Pin>("pin"),
                         InstanceMethod<&BpfLink::Unpin>("unpin"),
                         InstanceMethod<&BpfLink::Update>("update"),
                         InstanceMethod<&BpfLink::Detach>("detach"),
                         InstanceMethod<&BpfLink::Close>("close"),
                         InstanceMethod<&BpfLink::Info>("info"),
                     });
}

Napi::Object BpfLink::Create(Napi::Env env, int fd) {
  return Data(env).link.New({Napi::External<int>::New(env, &fd)});
}

BpfLink::BpfLink(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLink>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw UsageError(info.Env(), "BpfLink",
                     "use program.attachCgroup() or openPinnedLink() to get a link");
  }
  fd_ = *info[0].As<Napi::External<int>>().Data();
}

int BpfLink::OpenFd(Napi::Env env, const char* call) const {
  if (fd_ < 0) throw UsageError(env, call, "link is closed", EBADF);
  return fd_;
}

Napi::Value BpfLink::Fd(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), fd_);
}

Napi::Value BpfLink::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env, "bpf_obj_pin");
  std::string path = StringArg(info, 0, "bpf_obj_pin", "path");
  int err = bpf_obj_pin(fd, path.c_str());
  if (err) throw NativeError(env, "bpf_obj_pin", path, -err);
  return env.Undefined();
}

Napi::Value BpfLink::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "unlink", "path");
  if (unlink(path.c_str()) != 0) throw NativeError(env, "unlink", path, errno);
  return env.Undefined();
}

Napi::Value BpfLink::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env, "bpf_link_update");
  BpfProgram* program = BpfProgram::FromValue(env, info[0], "bpf_link_update");
  if (program->fd() < 0) throw UsageError(env, "bpf_link_update", "program is closed", EBADF);
  int err = bpf_link_update(fd, program->fd(), nullptr);
  if (err) throw NativeError(env, "bpf_link_update", program->name(), -err);
  return env.Undefined();
}

Napi::Value BpfLink::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env, "bpf_link_detach");
  int err = bpf_link_detach(fd);
  if (err) throw NativeError(env, "bpf_link_detach", "fd " + std::to_string(fd), -err);
  return env.Undefined();
}

Napi::Value BpfLink::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

// bpf_obj_get_info_by_fd on the link: its id, type, program, and for a cgroup link the cgroup
// it is attached to (0 once detached: the kernel drops the cgroup on BPF_LINK_DETACH).
Napi::Value BpfLink::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = OpenFd(env, "bpf_obj_get_info_by_fd");
  bpf_link_info kinfo = {};
  uint32_t len = sizeof(kinfo);
  int err = bpf_obj_get_info_by_fd(fd, &kinfo, &len);
  if (err) throw NativeError(env, "bpf_obj_get_info_by_fd", "link fd " + std::to_string(fd), -err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", kinfo.id);
  out.Set("type", kinfo.type);
  out.Set("progId", kinfo.prog_id);
  out.Set("cgroupId", Napi::Number::New(env, static_cast<double>(kinfo.type == BPF_LINK_TYPE_CGROUP
                                                                     ? kinfo.cgroup.cgroup_id
                                                                     : 0)));
  return out;
}

Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "bpf_obj_get", "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) throw NativeError(env, "bpf_obj_get", path, -fd);
  std::string kind = FdKind(fd);
  // The kernel names link inodes "bpf_link" in older releases and "bpf-link" in newer ones.
  if (kind != "anon_inode:bpf-link" && kind != "anon_inode:bpf_link") {
    close(fd);
    throw UsageError(env, "bpf_obj_get", path + " is not a pinned link (" + kind + ")");
  }
  return BpfLink::Create(env, fd);
}

}  // namespace sluice
