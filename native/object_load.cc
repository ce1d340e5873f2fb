// BpfObject::load(): bpf_object__load on the libuv pool. Each program gets its own verifier log
// buffer; libbpf fills it only when that program's load fails (it retries the failed load with
// log level 1), so after a failure the non-empty buffer names the culprit and carries the log.
#include <bpf/libbpf.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "object.h"
#include "promise_worker.h"

namespace sluice {

namespace {

// Untouched pages cost nothing, so a generous buffer is cheap; the kernel keeps the log's tail
// (where the verdict is) when it overflows.
constexpr size_t kVerifierLogBytes = 16 * 1024 * 1024;

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, BpfObject* owner, Napi::Object self, bpf_object* obj, std::string path)
      : PromiseWorker(env, "sluice:bpf_object__load"),
        owner_(owner),
        self_(Napi::Persistent(self)),
        obj_(obj),
        path_(std::move(path)) {}

  void Execute() override {
    std::vector<std::unique_ptr<char[]>> buffers;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj_) {
      buffers.emplace_back(new char[kVerifierLogBytes]);
      buffers.back()[0] = '\0';
      bpf_program__set_log_buf(prog, buffers.back().get(), kVerifierLogBytes);
    }
    int err = bpf_object__load(obj_);
    bpf_object__for_each_program(prog, obj_) {
      size_t size = 0;
      const char* log = bpf_program__log_buf(prog, &size);
      if (err && log && log[0] != '\0') {
        if (!verifier_log_.empty()) verifier_log_ += "\n";
        verifier_log_.append(log, strnlen(log, size));
        if (failed_program_.empty()) failed_program_ = bpf_program__name(prog);
      }
      bpf_program__set_log_buf(prog, nullptr, 0);
    }
    if (err) Fail("bpf_object__load", path_, -err);
  }

 protected:
  void OnOK() override {
    owner_->FinishLoad(err_ == 0);
    PromiseWorker::OnOK();
  }

  std::string Detail() override {
    if (failed_program_.empty()) return "";
    return " (program '" + failed_program_ + "' was rejected; see verifierLog)";
  }

  void Decorate(Napi::Object error) override {
    if (failed_program_.empty()) return;
    error.Set("program", failed_program_);
    error.Set("verifierLog", verifier_log_);
  }

 private:
  BpfObject* owner_;
  Napi::ObjectReference self_;  // keeps the object (and owner_) alive while loading
  bpf_object* obj_;
  std::string path_;
  std::string verifier_log_;
  std::string failed_program_;
};

}  // namespace

Napi::Value BpfObject::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = nullptr;
  try {
    obj = Configurable(env, "bpf_object__load");
  } catch (const Napi::Error& error) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(error.Value());
    return deferred.Promise();
  }
  auto* worker = new LoadWorker(env, this, info.This().As<Napi::Object>(), obj, path_);
  state_ = State::kLoading;
  worker->Queue();
  return worker->Promise();
}

}  // namespace sluice
