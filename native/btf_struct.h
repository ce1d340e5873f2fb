// A struct's layout and an enum's values from BTF, for checking user space's codecs and constants
// against the compiled object.
#ifndef SLUICE_NATIVE_BTF_STRUCT_H
#define SLUICE_NATIVE_BTF_STRUCT_H

#include <bpf/btf.h>
#include <napi.h>

#include <string>

namespace sluice {

// { name, size, members: [{ name, offset, size, bitfieldSize }] } or null when the BTF has no
// struct of that name (or there is no BTF at all).
Napi::Value BtfStructValue(Napi::Env env, const struct btf* btf, const std::string& name);

// { name, values: { NAME: number } } or null when the BTF has no enum of that name.
Napi::Value BtfEnumValue(Napi::Env env, const struct btf* btf, const std::string& name);

}  // namespace sluice

#endif  // SLUICE_NATIVE_BTF_STRUCT_H
