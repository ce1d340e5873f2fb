// TC (clsact, direct-action) attach through libbpf's netlink helpers, on the libuv pool.
// bpf_tc_hook_destroy is deliberately absent: it deletes the whole clsact qdisc and with it every
// other party's filters.
//
// An optional `netns` path (e.g. /run/netns/x) runs the netlink call in that network namespace:
// a fresh thread joins it with setns() and exits afterwards, so no pool thread ever changes
// namespace.
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>

#include "args.h"
#include "errors.h"
#include "promise_worker.h"
#include "tc.h"

namespace sluice {

namespace {

struct TcTarget {
  int ifindex = 0;
  bpf_tc_attach_point point = BPF_TC_INGRESS;
  uint32_t handle = 0;
  uint32_t priority = 0;
  std::string netns;

  std::string Describe() const {
    std::string out =
        "ifindex " + std::to_string(ifindex) + (point == BPF_TC_INGRESS ? " ingress" : " egress");
    if (handle || priority) {
      out += " handle " + std::to_string(handle) + " prio " + std::to_string(priority);
    }
    if (!netns.empty()) out += " in " + netns;
    return out;
  }
};

TcTarget ParseTarget(Napi::Object spec, const char* call, bool need_filter_id) {
  Napi::Env env = spec.Env();
  TcTarget target;
  if (spec.Get("ifindex").IsUndefined()) throw UsageError(env, call, "ifindex is required");
  target.ifindex = static_cast<int>(IntField(spec, "ifindex", call, 1, INT32_MAX, 0));
  Napi::Value direction = spec.Get("direction");
  std::string dir = direction.IsString() ? direction.As<Napi::String>().Utf8Value() : "";
  if (dir == "ingress") {
    target.point = BPF_TC_INGRESS;
  } else if (dir == "egress") {
    target.point = BPF_TC_EGRESS;
  } else {
    throw UsageError(env, call, "direction must be 'ingress' or 'egress'");
  }
  target.handle = static_cast<uint32_t>(IntField(spec, "handle", call, 0, UINT32_MAX, 0));
  target.priority = static_cast<uint32_t>(IntField(spec, "priority", call, 0, UINT16_MAX, 0));
  if (need_filter_id && (target.handle == 0 || target.priority == 0)) {
    throw UsageError(env, call, "handle and priority are required (non-zero) to name a filter");
  }
  StringField(spec, "netns", call, &target.netns);
  return target;
}

class TcWorker : public PromiseWorker {
 public:
  TcWorker(Napi::Env env, const char* name, TcTarget target)
      : PromiseWorker(env, name), target_(std::move(target)) {}

  void Execute() final {
    if (target_.netns.empty()) {
      Run();
      return;
    }
    int ns_fd = open(target_.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
      Fail("open", target_.netns, errno);
      return;
    }
    try {
      std::thread thread([this, ns_fd] {
        if (setns(ns_fd, CLONE_NEWNET) != 0) {
          Fail("setns", target_.netns, errno);
          return;
        }
        Run();
      });
      thread.join();
    } catch (const std::system_error& e) {
      Fail("std::thread", target_.netns, e.code().value() ? e.code().value() : EAGAIN);
    }
    close(ns_fd);
  }

 protected:
  virtual void Run() = 0;

  bpf_tc_hook Hook() const {
    bpf_tc_hook hook;
    memset(&hook, 0, sizeof(hook));
    hook.sz = sizeof(hook);
    hook.ifindex = target_.ifindex;
    hook.attach_point = target_.point;
    return hook;
  }

  bpf_tc_opts Opts() const {
    bpf_tc_opts opts;
    memset(&opts, 0, sizeof(opts));
    opts.sz = sizeof(opts);
    opts.handle = target_.handle;
    opts.priority = target_.priority;
    return opts;
  }

  TcTarget target_;
};

class HookCreateWorker : public TcWorker {
 public:
  using TcWorker::TcWorker;

 protected:
  void Run() override {
    bpf_tc_hook hook = Hook();
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST) Fail("bpf_tc_hook_create", target_.Describe(), -err);
  }
};

class AttachWorker : public TcWorker {
 public:
  AttachWorker(Napi::Env env, TcTarget target, int prog_fd, bool replace)
      : TcWorker(env, "sluice:bpf_tc_attach", std::move(target)),
        prog_fd_(prog_fd),
        replace_(replace) {}

 protected:
  void Run() override {
    bpf_tc_hook hook = Hook();
    bpf_tc_opts opts = Opts();
    opts.prog_fd = prog_fd_;
    opts.flags = replace_ ? BPF_TC_F_REPLACE : 0;
    int err = bpf_tc_attach(&hook, &opts);
    if (err) {
      Fail("bpf_tc_attach", target_.Describe(), -err);
      return;
    }
    handle_ = opts.handle;
    priority_ = opts.priority;
    prog_id_ = opts.prog_id;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("handle", handle_);
    out.Set("priority", priority_);
    out.Set("progId", prog_id_);
    return out;
  }

 private:
  int prog_fd_;
  bool replace_;
  uint32_t handle_ = 0;
  uint32_t priority_ = 0;
  uint32_t prog_id_ = 0;
};

class DetachWorker : public TcWorker {
 public:
  using TcWorker::TcWorker;

 protected:
  void Run() override {
    bpf_tc_hook hook = Hook();
    bpf_tc_opts opts = Opts();
    int err = bpf_tc_detach(&hook, &opts);
    if (err) Fail("bpf_tc_detach", target_.Describe(), -err);
  }
};

class QueryWorker : public TcWorker {
 public:
  using TcWorker::TcWorker;

 protected:
  void Run() override {
    bpf_tc_hook hook = Hook();
    bpf_tc_opts opts = Opts();
    int err = bpf_tc_query(&hook, &opts);
    // No such filter: ENOENT; no filter chain at all on that hook yet: the kernel says EINVAL
    // ("Cannot find specified filter chain"). Our own arguments were checked up front.
    if (err == -ENOENT || err == -EINVAL) return;
    if (err) {
      Fail("bpf_tc_query", target_.Describe(), -err);
      return;
    }
    prog_id_ = opts.prog_id;
  }

  Napi::Value Result(Napi::Env env) override {
    return prog_id_ ? Napi::Number::New(env, prog_id_) : env.Null();
  }

 private:
  uint32_t prog_id_ = 0;
};

template <typename Worker, typename... Args>
Napi::Value Start(Args&&... args) {
  auto* worker = new Worker(std::forward<Args>(args)...);
  worker->Queue();
  return worker->Promise();
}

}  // namespace

Napi::Value TcHookCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_tc_hook_create";
  TcTarget target;
  target.ifindex = static_cast<int>(IntArg(info, 0, call, "ifindex", 1, INT32_MAX, 0));
  if (target.ifindex == 0) throw UsageError(env, call, "ifindex is required");
  if (!info[1].IsUndefined())
    StringField(ObjectArg(info, 1, call, "options"), "netns", call, &target.netns);
  return Start<HookCreateWorker>(env, "sluice:bpf_tc_hook_create", target);
}

Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_tc_attach";
  Napi::Object spec = ObjectArg(info, 0, call, "spec");
  TcTarget target = ParseTarget(spec, call, false);
  if (spec.Get("progFd").IsUndefined()) throw UsageError(env, call, "progFd is required");
  int prog_fd = static_cast<int>(IntField(spec, "progFd", call, 0, INT32_MAX, 0));
  bool replace = spec.Get("replace").ToBoolean().Value();
  return Start<AttachWorker>(env, target, prog_fd, replace);
}

Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_tc_detach";
  TcTarget target = ParseTarget(ObjectArg(info, 0, call, "spec"), call, true);
  return Start<DetachWorker>(env, "sluice:bpf_tc_detach", target);
}

Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_tc_query";
  TcTarget target = ParseTarget(ObjectArg(info, 0, call, "spec"), call, true);
  return Start<QueryWorker>(env, "sluice:bpf_tc_query", target);
}

}  // namespace sluice
