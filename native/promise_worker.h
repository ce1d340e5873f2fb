// An AsyncWorker that settles a Promise: Execute() runs on the libuv pool and records an errno
// (never touching JS); OnOK() then resolves with Result() or rejects with a NativeError.
#ifndef SLUICE_NATIVE_PROMISE_WORKER_H
#define SLUICE_NATIVE_PROMISE_WORKER_H

#include <napi.h>

#include <string>

#include "errors.h"

namespace sluice {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* resource_name)
      : Napi::AsyncWorker(env, resource_name), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  // Called on the main thread when Execute() succeeded.
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  // Called on the main thread: text appended to the rejection's message.
  virtual std::string Detail() { return ""; }

  // Called on the main thread to add properties to the rejection (e.g. the verifier log).
  virtual void Decorate(Napi::Object error) {}

  void Fail(const char* call, const std::string& subject, int err) {
    call_ = call;
    subject_ = subject;
    err_ = err;
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (err_ != 0) {
      Napi::Error error = NativeError(env, call_, subject_, err_, Detail());
      Decorate(error.Value());
      deferred_.Reject(error.Value());
      return;
    }
    deferred_.Resolve(Result(env));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

  int err_ = 0;

 private:
  std::string call_;
  std::string subject_;
  Napi::Promise::Deferred deferred_;
};

// A Promise-returning call reports bad arguments as a rejection too, never as a synchronous throw.
template <Napi::Value (*Start)(const Napi::CallbackInfo&)>
Napi::Value RejectOnThrow(const Napi::CallbackInfo& info) {
  try {
    return Start(info);
  } catch (const Napi::Error& error) {
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(info.Env());
    deferred.Reject(error.Value());
    return deferred.Promise();
  }
}

}  // namespace sluice

#endif  // SLUICE_NATIVE_PROMISE_WORKER_H
