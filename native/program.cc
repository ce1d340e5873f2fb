#include "program.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "link.h"

namespace sluice {

namespace {

// What one iterator run produced, or the call that failed (never touches JS: may run on a
// thread of its own).
struct IterRun {
  std::string out;
  const char* call = nullptr;
  int err = 0;

  void Fail(const char* failed_call, int e) {
    call = failed_call;
    err = e;
  }
};

// An iterator's output is text or records for user space; anything this large is a runaway.
constexpr size_t kIterOutputLimit = 64u << 20;

// bpf_iter_create and read to EOF. The kernel binds a socket iterator (iter/udp, iter/tcp...) to
// the network namespace of the thread that calls bpf_iter_create, so this runs on the thread
// whose namespace is to be walked.
void ReadIterator(int link_fd, IterRun* run) {
  int fd = bpf_iter_create(link_fd);
  if (fd < 0) {
    run->Fail("bpf_iter_create", -fd);
    return;
  }
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      run->Fail("read", errno);
      break;
    }
    if (run->out.size() + static_cast<size_t>(n) > kIterOutputLimit) {
      run->Fail("read", EFBIG);
      break;
    }
    run->out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
}

// ReadIterator on a short-lived thread that joined the network namespace ns_fd refers to. The
// thread exits afterwards, so no other thread (the main thread, a libuv pool thread) ever
// changes namespace.
void ReadIteratorIn(int ns_fd, int link_fd, IterRun* run) {
  try {
    std::thread thread([ns_fd, link_fd, run] {
      if (setns(ns_fd, CLONE_NEWNET) != 0) {
        run->Fail("setns", errno);
        return;
      }
      ReadIterator(link_fd, run);
    });
    thread.join();
  } catch (const std::system_error& e) {
    run->Fail("std::thread", e.code().value() ? e.code().value() : EAGAIN);
  }
}

}  // namespace

Napi::Function BpfProgram::Define(Napi::Env env) {
  return DefineClass(env, "BpfProgram",
                     {
                         InstanceAccessor<&BpfProgram::Info>("info"),
                         InstanceMethod<&BpfProgram::TestRun>("testRun"),
                         InstanceMethod<&BpfProgram::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&BpfProgram::RunIterator>("runIterator"),
                         InstanceMethod<&BpfProgram::Pin>("pin"),
                         InstanceMethod<&BpfProgram::MapIds>("mapIds"),
                         InstanceMethod<&BpfProgram::Close>("close"),
                     });
}

Napi::Object BpfProgram::Create(Napi::Env env, const ProgramSpec& spec) {
  ProgramSpec copy = spec;
  return Data(env).program.New({Napi::External<ProgramSpec>::New(env, &copy)});
}

BpfProgram* BpfProgram::FromValue(Napi::Env env, Napi::Value value, const char* call) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(Data(env).program.Value())) {
    throw UsageError(env, call, "expected a program handle from object.program()");
  }
  return BpfProgram::Unwrap(value.As<Napi::Object>());
}

BpfProgram::BpfProgram(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfProgram>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw UsageError(info.Env(), "BpfProgram", "use object.program() to get a program");
  }
  spec_ = *info[0].As<Napi::External<ProgramSpec>>().Data();
}

// Closing a program fd never detaches anything: attachments hold their own reference.
BpfProgram::~BpfProgram() {
  if (spec_.fd >= 0) close(spec_.fd);
}

// Idempotent. Closing the program's fd never detaches anything: attachments hold their own
// reference. Later calls on the handle fail with EBADF.
Napi::Value BpfProgram::Close(const Napi::CallbackInfo& info) {
  if (spec_.fd >= 0) close(spec_.fd);
  spec_.fd = -1;
  return info.Env().Undefined();
}

Napi::Value BpfProgram::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", spec_.name);
  out.Set("section", spec_.section);
  out.Set("type", spec_.type);
  out.Set("id", spec_.id);
  out.Set("fd", spec_.fd);
  return out;
}

Napi::Value BpfProgram::TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_prog_test_run_opts";
  Napi::Object opts =
      info[0].IsUndefined() ? Napi::Object::New(env) : ObjectArg(info, 0, call, "options");
  Napi::Buffer<uint8_t> data;
  Napi::Buffer<uint8_t> ctx;
  bool has_data = BufferField(opts, "data", call, &data);
  bool has_ctx = BufferField(opts, "ctx", call, &ctx);
  const int64_t limit = 1 << 24;
  size_t data_in = has_data ? data.Length() : 0;
  size_t ctx_in = has_ctx ? ctx.Length() : 0;
  int64_t data_out_size =
      IntField(opts, "dataSizeOut", call, 0, limit, has_data ? data_in + 256 : 0);
  // The kernel refuses (ENOSPC) an output ctx smaller than its own struct; the result is sliced
  // to what it wrote, so a generous default costs nothing.
  int64_t ctx_out_size =
      IntField(opts, "ctxSizeOut", call, 0, limit, has_ctx ? std::max<size_t>(ctx_in, 1024) : 0);
  int64_t repeat = IntField(opts, "repeat", call, 0, INT32_MAX, 1);
  if (data_in > static_cast<size_t>(limit) || ctx_in > static_cast<size_t>(limit)) {
    throw UsageError(env, call, "data and ctx are limited to 16 MiB");
  }

  std::vector<uint8_t> data_out(static_cast<size_t>(data_out_size));
  std::vector<uint8_t> ctx_out(static_cast<size_t>(ctx_out_size));
  bpf_test_run_opts run;
  memset(&run, 0, sizeof(run));
  run.sz = sizeof(run);
  if (has_data) {
    run.data_in = data.Data();
    run.data_size_in = static_cast<__u32>(data_in);
  }
  if (data_out_size > 0) {
    run.data_out = data_out.data();
    run.data_size_out = static_cast<__u32>(data_out_size);
  }
  if (has_ctx) {
    run.ctx_in = ctx.Data();
    run.ctx_size_in = static_cast<__u32>(ctx_in);
  }
  if (ctx_out_size > 0) {
    run.ctx_out = ctx_out.data();
    run.ctx_size_out = static_cast<__u32>(ctx_out_size);
  }
  run.repeat = static_cast<int>(repeat);

  if (spec_.fd < 0) throw UsageError(env, call, "program " + spec_.name + " is closed", EBADF);
  int err = bpf_prog_test_run_opts(spec_.fd, &run);
  if (err) throw NativeError(env, call, spec_.name, -err);

  Napi::Object out = Napi::Object::New(env);
  out.Set("retval", Napi::Number::New(env, run.retval));
  size_t data_len = std::min<size_t>(run.data_size_out, data_out.size());
  out.Set("data", Napi::Buffer<uint8_t>::Copy(env, data_out.data(), data_len));
  if (ctx_out_size > 0) {
    size_t ctx_len = std::min<size_t>(run.ctx_size_out, ctx_out.size());
    out.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, ctx_out.data(), ctx_len));
  } else {
    out.Set("ctx", env.Null());
  }
  out.Set("durationNs", Napi::Number::New(env, run.duration));
  return out;
}

Napi::Value BpfProgram::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "bpf_link_create", "cgroupPath");
  if (spec_.fd < 0) {
    throw UsageError(env, "bpf_link_create", "program " + spec_.name + " is closed", EBADF);
  }
  int cgroup_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup_fd < 0) throw NativeError(env, "open", path, errno);
  int link_fd = bpf_link_create(
      spec_.fd, cgroup_fd, static_cast<enum bpf_attach_type>(spec_.expected_attach_type), nullptr);
  close(cgroup_fd);
  if (link_fd < 0) throw NativeError(env, "bpf_link_create", spec_.name + " on " + path, -link_fd);
  return BpfLink::Create(env, link_fd);
}

// runIterator({netns}): one pass of an iterator program, returning what it wrote. The link is
// created as bpf_program__attach_iter does (bpf_link_create with BPF_TRACE_ITER and no target
// parameters) and closed again; bpf_iter_create and the reads happen inside `netns` when given.
// Synchronous: the caller wants the sweep done before it goes on (a sweep is quick).
Napi::Value BpfProgram::RunIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_iter_create";
  std::string netns;
  if (!info[0].IsUndefined())
    StringField(ObjectArg(info, 0, call, "options"), "netns", call, &netns);
  if (spec_.fd < 0) throw UsageError(env, call, "program " + spec_.name + " is closed", EBADF);
  if (spec_.expected_attach_type != BPF_TRACE_ITER) {
    throw UsageError(env, call,
                     "program " + spec_.name + " (section " + spec_.section +
                         ") is not an iterator (SEC(\"iter/...\"))");
  }
  std::string subject = spec_.name + (netns.empty() ? "" : " in " + netns);

  int ns_fd = -1;
  if (!netns.empty()) {
    ns_fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) throw NativeError(env, "open", netns, errno);
  }
  int link_fd = bpf_link_create(spec_.fd, 0, BPF_TRACE_ITER, nullptr);
  if (link_fd < 0) {
    if (ns_fd >= 0) close(ns_fd);
    throw NativeError(env, "bpf_link_create", subject, -link_fd);
  }
  IterRun run;
  if (ns_fd >= 0) {
    ReadIteratorIn(ns_fd, link_fd, &run);
    close(ns_fd);
  } else {
    ReadIterator(link_fd, &run);
  }
  close(link_fd);
  if (run.err) throw NativeError(env, run.call, subject, run.err);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(run.out.data()),
                                     run.out.size());
}

// pin(path): bpf_obj_pin on bpffs, as bpf_program__pin does for a loaded program. The pin holds
// the program in the kernel until it is unlinked.
Napi::Value BpfProgram::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_obj_pin";
  std::string path = StringArg(info, 0, call, "path");
  if (spec_.fd < 0) throw UsageError(env, call, "program " + spec_.name + " is closed", EBADF);
  int err = bpf_obj_pin(spec_.fd, path.c_str());
  if (err) throw NativeError(env, call, spec_.name + " at " + path, -err);
  return env.Undefined();
}

// mapIds(): the ids of the maps the program uses (bpf_prog_info.map_ids), as the kernel keeps
// them: the instances its instructions point to, whatever is pinned where now.
Napi::Value BpfProgram::MapIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_obj_get_info_by_fd";
  if (spec_.fd < 0) throw UsageError(env, call, "program " + spec_.name + " is closed", EBADF);
  std::vector<uint32_t> ids;
  // The first call tells how many; a second fills them (the count cannot change: a loaded
  // program's maps are fixed).
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct bpf_prog_info pinfo;
    memset(&pinfo, 0, sizeof(pinfo));
    pinfo.nr_map_ids = static_cast<uint32_t>(ids.size());
    pinfo.map_ids = reinterpret_cast<uintptr_t>(ids.data());
    uint32_t len = sizeof(pinfo);
    int err = bpf_obj_get_info_by_fd(spec_.fd, &pinfo, &len);
    if (err) throw NativeError(env, call, spec_.name, -err);
    if (pinfo.nr_map_ids <= ids.size()) {
      ids.resize(pinfo.nr_map_ids);
      break;
    }
    ids.resize(pinfo.nr_map_ids);
  }
  Napi::Array out = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); ++i) out.Set(static_cast<uint32_t>(i), ids[i]);
  return out;
}

// bpf_prog_get_fd_by_id: a handle on a program loaded by someone else (a filter's program, read
// from `tc filter show`), e.g. to hand packets to it through a program array. Not an object's
// program: testRun works, attachCgroup too; its section is unknown ("").
Napi::Value OpenProgramById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t id = IntArg(info, 0, "bpf_prog_get_fd_by_id", "id", 0, UINT32_MAX, 0);
  if (id == 0) throw UsageError(env, "bpf_prog_get_fd_by_id", "expected a program id (1 or more)");
  int fd = bpf_prog_get_fd_by_id(static_cast<uint32_t>(id));
  if (fd < 0) throw NativeError(env, "bpf_prog_get_fd_by_id", std::to_string(id), -fd);
  struct bpf_prog_info pinfo = {};
  uint32_t len = sizeof(pinfo);
  int rc = bpf_obj_get_info_by_fd(fd, &pinfo, &len);
  if (rc != 0) {
    int err = -rc;
    close(fd);
    throw NativeError(env, "bpf_obj_get_info_by_fd", std::to_string(id), err);
  }
  ProgramSpec spec;
  spec.fd = fd;
  spec.name = pinfo.name;
  spec.type = pinfo.type;
  spec.id = pinfo.id;
  return BpfProgram::Create(env, spec);
}

}  // namespace sluice
