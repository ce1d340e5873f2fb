// `const volatile` globals: located through the object's BTF (.rodata DATASEC, variable offsets)
// and written into the map's initial value before load.
#ifndef SLUICE_NATIVE_RODATA_H
#define SLUICE_NATIVE_RODATA_H

#include <bpf/libbpf.h>
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice {

struct RodataVar {
  std::string name;
  std::string section;  // ".rodata" (or ".rodata.<custom>")
  uint32_t offset = 0;
  uint32_t size = 0;
};

std::vector<RodataVar> ListRodataVars(const bpf_object* obj);

// Throws ENOENT when no such variable exists and EINVAL when len differs from its size.
void WriteRodataVar(Napi::Env env, bpf_object* obj, const std::string& name, const uint8_t* data,
                    size_t len);

}  // namespace sluice

#endif  // SLUICE_NATIVE_RODATA_H
