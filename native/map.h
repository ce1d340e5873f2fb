// BpfMap: a handle on one kernel map, owning a private fd. Element and batch ops are synchronous
// (single syscalls); every key/value Buffer is checked against the map's sizes first.
#ifndef SLUICE_NATIVE_MAP_H
#define SLUICE_NATIVE_MAP_H

#include <napi.h>

#include <cstdint>
#include <string>

namespace sluice {

struct MapSpec {
  int fd = -1;  // owned by the BpfMap created from this spec
  std::string name;
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t id = 0;
};

// Fills spec (except fd and, if keep_name, the name) from the kernel's bpf_map_info. Returns 0
// or a positive errno.
int MapSpecFromKernel(int fd, MapSpec* spec, bool keep_name);

// True for map types whose values hold one slot per possible CPU.
bool IsPerCpuMapType(uint32_t type);

class BpfMap : public Napi::ObjectWrap<BpfMap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Creates the JS handle; takes ownership of spec.fd.
  static Napi::Object Create(Napi::Env env, const MapSpec& spec);

  explicit BpfMap(const Napi::CallbackInfo& info);
  ~BpfMap() override;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value NextKey(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value LookupBatch(const Napi::CallbackInfo& info);  // map_batch.cc
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);  // map_batch.cc
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);  // map_batch.cc
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Unpin(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value BtfLayout(const Napi::CallbackInfo& info);

  // The fd, or throws EBADF when the handle was closed.
  int Fd(Napi::Env env, const char* call) const;
  // Throws EINVAL naming expected vs got when buf is not `expected` bytes.
  void CheckSize(Napi::Env env, const char* call, const char* what, size_t got,
                 size_t expected) const;
  Napi::Buffer<uint8_t> Key(const Napi::CallbackInfo& info, size_t index, const char* call) const;
  // Size of one value as user space passes it (per-CPU maps: rounded slot x possible CPUs).
  size_t ValueBufSize() const { return value_buf_size_; }

  MapSpec spec_;
  size_t value_buf_size_ = 0;
};

// openPinnedMap(path): NativeMap
Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info);
// addon.openMapById(id): see map.cc.
Napi::Value OpenMapById(const Napi::CallbackInfo& info);

}  // namespace sluice

#endif  // SLUICE_NATIVE_MAP_H
