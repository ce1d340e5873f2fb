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
// The type `type_id` (typedefs and modifiers resolved) in the same shape: a struct with its
// members, any other type with its name, its size and no members; null for id 0 or no BTF.
// Map key/value layouts, for translating a pinned map's entries (src/datapath/map-migration.ts).
Napi::Value BtfTypeValue(Napi::Env env, const struct btf* btf, __u32 type_id);

}  // namespace sluice

#endif  // SLUICE_NATIVE_BTF_STRUCT_H
