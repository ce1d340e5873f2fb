#include "btf_struct.h"

#include "errors.h"

namespace sluice {

namespace {

// The type of that name and kind, or nullptr when there is none (or no BTF at all).
const struct btf_type* FindType(const struct btf* btf, const std::string& name, __u32 kind) {
  if (!btf) return nullptr;
  __s32 id = btf__find_by_name_kind(btf, name.c_str(), kind);
  return id < 0 ? nullptr : btf__type_by_id(btf, static_cast<__u32>(id));
}

Napi::Value StructOfType(Napi::Env env, const struct btf* btf, const struct btf_type* type,
                         const std::string& name) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("size", type->size);
  Napi::Array members = Napi::Array::New(env);
  const struct btf_member* member = btf_members(type);
  for (__u32 i = 0; i < btf_vlen(type); ++i) {
    __s64 size = btf__resolve_size(btf, member[i].type);
    if (size < 0) throw NativeError(env, "btf__resolve_size", name, static_cast<int>(-size));
    const char* member_name = btf__name_by_offset(btf, member[i].name_off);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", member_name ? member_name : "");
    entry.Set("offset", btf_member_bit_offset(type, i) / 8);
    entry.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    entry.Set("bitfieldSize", btf_member_bitfield_size(type, i));
    members.Set(i, entry);
  }
  out.Set("members", members);
  return out;
}

}  // namespace

Napi::Value BtfStructValue(Napi::Env env, const struct btf* btf, const std::string& name) {
  const struct btf_type* type = FindType(btf, name, BTF_KIND_STRUCT);
  if (!type) return env.Null();
  return StructOfType(env, btf, type, name);
}

Napi::Value BtfTypeValue(Napi::Env env, const struct btf* btf, __u32 type_id) {
  if (!btf || type_id == 0) return env.Null();
  __s32 resolved = btf__resolve_type(btf, type_id);  // through typedefs and modifiers
  if (resolved < 0) return env.Null();
  const struct btf_type* type = btf__type_by_id(btf, static_cast<__u32>(resolved));
  if (!type) return env.Null();
  const char* type_name = btf__name_by_offset(btf, type->name_off);
  std::string name = type_name ? type_name : "";
  if (btf_is_struct(type)) return StructOfType(env, btf, type, name);
  __s64 size = btf__resolve_size(btf, static_cast<__u32>(resolved));
  if (size < 0) throw NativeError(env, "btf__resolve_size", name, static_cast<int>(-size));
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  out.Set("members", Napi::Array::New(env));
  return out;
}

Napi::Value BtfEnumValue(Napi::Env env, const struct btf* btf, const std::string& name) {
  const struct btf_type* type = FindType(btf, name, BTF_KIND_ENUM);
  if (!type) return env.Null();

  Napi::Object values = Napi::Object::New(env);
  const struct btf_enum* value = btf_enum(type);
  for (__u32 i = 0; i < btf_vlen(type); ++i) {
    const char* value_name = btf__name_by_offset(btf, value[i].name_off);
    // Our enums are unsigned (flags, sizes): BTF stores each value as 32 bits.
    values.Set(value_name ? value_name : "",
               Napi::Number::New(env, static_cast<__u32>(value[i].val)));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", name);
  out.Set("values", values);
  return out;
}

}  // namespace sluice
