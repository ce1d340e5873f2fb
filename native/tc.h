// tcHookCreate / tcAttach / tcDetach / tcQuery: each returns a Promise.
#ifndef SLUICE_NATIVE_TC_H
#define SLUICE_NATIVE_TC_H

#include <napi.h>

namespace sluice {

Napi::Value TcHookCreate(const Napi::CallbackInfo& info);
Napi::Value TcAttach(const Napi::CallbackInfo& info);
Napi::Value TcDetach(const Napi::CallbackInfo& info);
Napi::Value TcQuery(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_TC_H
