// Per-environment addon state: the JS constructors of the wrapped handle classes, so C++ can
// create instances (object.map() returns a BpfMap, ...) and check what JS hands back.
#ifndef SLUICE_NATIVE_ADDON_H
#define SLUICE_NATIVE_ADDON_H

#include <napi.h>

namespace sluice {

struct AddonData {
  Napi::FunctionReference object;
  Napi::FunctionReference map;
  Napi::FunctionReference program;
  Napi::FunctionReference link;
};

AddonData& Data(Napi::Env env);

}  // namespace sluice

#endif  // SLUICE_NATIVE_ADDON_H
