#include "rodata.h"

#include <bpf/btf.h>

#include <cstring>

#include "errors.h"

namespace sluice {

std::vector<RodataVar> ListRodataVars(const bpf_object* obj) {
  std::vector<RodataVar> vars;
  const struct btf* btf = bpf_object__btf(obj);
  if (!btf) return vars;
  const __u32 count = btf__type_cnt(btf);
  for (__u32 id = 1; id < count; ++id) {
    const struct btf_type* sec = btf__type_by_id(btf, id);
    if (!sec || !btf_is_datasec(sec)) continue;
    const char* sec_name = btf__name_by_offset(btf, sec->name_off);
    if (!sec_name || strncmp(sec_name, ".rodata", 7) != 0) continue;
    const struct btf_var_secinfo* info = btf_var_secinfos(sec);
    for (__u16 i = 0; i < btf_vlen(sec); ++i) {
      const struct btf_type* var = btf__type_by_id(btf, info[i].type);
      if (!var || !btf_is_var(var)) continue;
      const char* var_name = btf__name_by_offset(btf, var->name_off);
      vars.push_back(RodataVar{var_name ? var_name : "", sec_name, info[i].offset, info[i].size});
    }
  }
  return vars;
}

void WriteRodataVar(Napi::Env env, bpf_object* obj, const std::string& name, const uint8_t* data,
                    size_t len) {
  const char* call = "bpf_map__set_initial_value";
  for (const RodataVar& var : ListRodataVars(obj)) {
    if (var.name != name) continue;
    if (len != var.size) {
      throw UsageError(env, call,
                       "rodata variable '" + name + "' is " + std::to_string(var.size) +
                           " bytes, got a value of " + std::to_string(len) + " bytes");
    }
    bpf_map* map = bpf_object__find_map_by_name(obj, var.section.c_str());
    if (!map) {
      throw UsageError(
          env, call, "no map backs section " + var.section + " (variable '" + name + "')", ENOENT);
    }
    size_t map_size = 0;
    const void* current = bpf_map__initial_value(map, &map_size);
    if (!current || static_cast<size_t>(var.offset) + var.size > map_size) {
      throw UsageError(
          env, call, "section " + var.section + " has no writable initial value for '" + name + "'",
          EINVAL);
    }
    const uint8_t* bytes = static_cast<const uint8_t*>(current);
    std::vector<uint8_t> image(bytes, bytes + map_size);
    memcpy(image.data() + var.offset, data, len);
    int err = bpf_map__set_initial_value(map, image.data(), image.size());
    if (err) throw NativeError(env, call, name, -err);
    return;
  }
  throw UsageError(env, call, "no const volatile variable '" + name + "' in the object's .rodata",
                   ENOENT);
}

}  // namespace sluice
