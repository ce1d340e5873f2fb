#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "args.h"
#include "btf_struct.h"
#include "errors.h"
#include "fd_util.h"

namespace sluice {

int MapSpecFromKernel(int fd, MapSpec* spec, bool keep_name) {
  struct bpf_map_info kinfo;
  memset(&kinfo, 0, sizeof(kinfo));
  __u32 len = sizeof(kinfo);
  int err = bpf_obj_get_info_by_fd(fd, &kinfo, &len);
  if (err) return -err;
  if (!keep_name) spec->name = kinfo.name;
  spec->type = kinfo.type;
  spec->key_size = kinfo.key_size;
  spec->value_size = kinfo.value_size;
  spec->max_entries = kinfo.max_entries;
  spec->id = kinfo.id;
  return 0;
}

bool IsPerCpuMapType(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

Napi::Function BpfMap::Define(Napi::Env env) {
  return DefineClass(env, "BpfMap",
                     {
                         InstanceAccessor<&BpfMap::Info>("info"),
                         InstanceMethod<&BpfMap::Lookup>("lookup"),
                         InstanceMethod<&BpfMap::Update>("update"),
                         InstanceMethod<&BpfMap::Delete>("delete"),
                         InstanceMethod<&BpfMap::NextKey>("nextKey"),
                         InstanceMethod<&BpfMap::Keys>("keys"),
                         InstanceMethod<&BpfMap::LookupBatch>("lookupBatch"),
                         InstanceMethod<&BpfMap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&BpfMap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&BpfMap::Pin>("pin"),
                         InstanceMethod<&BpfMap::Unpin>("unpin"),
                         InstanceMethod<&BpfMap::Close>("close"),
                         InstanceMethod<&BpfMap::BtfLayout>("btfLayout"),
                     });
}

Napi::Object BpfMap::Create(Napi::Env env, const MapSpec& spec) {
  MapSpec copy = spec;
  return Data(env).map.New({Napi::External<MapSpec>::New(env, &copy)});
}

BpfMap::BpfMap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw UsageError(info.Env(), "BpfMap", "use object.map() or openPinnedMap() to get a map");
  }
  spec_ = *info[0].As<Napi::External<MapSpec>>().Data();
  value_buf_size_ = spec_.value_size;
  if (IsPerCpuMapType(spec_.type)) {
    int cpus = libbpf_num_possible_cpus();
    value_buf_size_ = ((spec_.value_size + 7) / 8) * 8 * static_cast<size_t>(cpus > 0 ? cpus : 1);
  }
}

// Maps may be released by the GC: a map fd going away never changes what the dataplane does.
BpfMap::~BpfMap() {
  if (spec_.fd >= 0) close(spec_.fd);
}

int BpfMap::Fd(Napi::Env env, const char* call) const {
  if (spec_.fd < 0) throw UsageError(env, call, "map " + spec_.name + " is closed", EBADF);
  return spec_.fd;
}

void BpfMap::CheckSize(Napi::Env env, const char* call, const char* what, size_t got,
                       size_t expected) const {
  if (got == expected) return;
  throw UsageError(env, call,
                   "map " + spec_.name + ": " + what + " is " + std::to_string(got) +
                       " bytes, expected " + std::to_string(expected));
}

Napi::Buffer<uint8_t> BpfMap::Key(const Napi::CallbackInfo& info, size_t index,
                                  const char* call) const {
  Napi::Buffer<uint8_t> key = BufferArg(info, index, call, "key");
  CheckSize(info.Env(), call, "key", key.Length(), spec_.key_size);
  return key;
}

Napi::Value BpfMap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", spec_.name);
  out.Set("type", spec_.type);
  out.Set("keySize", spec_.key_size);
  out.Set("valueSize", spec_.value_size);
  out.Set("maxEntries", spec_.max_entries);
  out.Set("id", spec_.id);
  out.Set("fd", spec_.fd);
  return out;
}

Napi::Value BpfMap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_lookup_elem";
  int fd = Fd(env, call);
  Napi::Buffer<uint8_t> key = Key(info, 0, call);
  std::vector<uint8_t> value(ValueBufSize());
  int err = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (err == -ENOENT) return env.Null();
  if (err) throw NativeError(env, call, spec_.name, -err);
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

Napi::Value BpfMap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_update_elem";
  int fd = Fd(env, call);
  Napi::Buffer<uint8_t> key = Key(info, 0, call);
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, call, "value");
  CheckSize(env, call, "value", value.Length(), ValueBufSize());
  // BPF_ANY | BPF_NOEXIST | BPF_EXIST, optionally with BPF_F_LOCK (4).
  uint64_t flags = static_cast<uint64_t>(IntArg(info, 2, call, "flags", 0, 7, BPF_ANY));
  int err = bpf_map_update_elem(fd, key.Data(), value.Data(), flags);
  if (err) throw NativeError(env, call, spec_.name, -err);
  return env.Undefined();
}

Napi::Value BpfMap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_delete_elem";
  int fd = Fd(env, call);
  Napi::Buffer<uint8_t> key = Key(info, 0, call);
  int err = bpf_map_delete_elem(fd, key.Data());
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err) throw NativeError(env, call, spec_.name, -err);
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfMap::NextKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_get_next_key";
  int fd = Fd(env, call);
  const void* current = nullptr;
  Napi::Buffer<uint8_t> key;
  if (!info[0].IsNull() && !info[0].IsUndefined()) {
    key = Key(info, 0, call);
    current = key.Data();
  }
  std::vector<uint8_t> next(spec_.key_size);
  int err = bpf_map_get_next_key(fd, current, next.data());
  if (err == -ENOENT) return env.Null();
  if (err) throw NativeError(env, call, spec_.name, -err);
  return Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size());
}

Napi::Value BpfMap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_get_next_key";
  int fd = Fd(env, call);
  Napi::Array out = Napi::Array::New(env);
  std::vector<uint8_t> current(spec_.key_size);
  std::vector<uint8_t> next(spec_.key_size);
  // A hash map that changes under us may restart the walk; bound it rather than loop forever.
  const uint64_t limit = 2ull * spec_.max_entries + 16;
  uint32_t count = 0;
  bool first = true;
  for (;;) {
    int err = bpf_map_get_next_key(fd, first ? nullptr : current.data(), next.data());
    if (err == -ENOENT) break;
    if (err) throw NativeError(env, call, spec_.name, -err);
    if (count >= limit) {
      throw UsageError(env, call, "map " + spec_.name + " kept changing during key iteration",
                       EAGAIN);
    }
    out.Set(count++, Napi::Buffer<uint8_t>::Copy(env, next.data(), next.size()));
    current.swap(next);
    first = false;
  }
  return out;
}

Napi::Value BpfMap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = Fd(env, "bpf_obj_pin");
  std::string path = StringArg(info, 0, "bpf_obj_pin", "path");
  int err = bpf_obj_pin(fd, path.c_str());
  if (err) throw NativeError(env, "bpf_obj_pin", path, -err);
  return env.Undefined();
}

Napi::Value BpfMap::Unpin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "unlink", "path");
  if (unlink(path.c_str()) != 0) throw NativeError(env, "unlink", path, errno);
  return env.Undefined();
}

Napi::Value BpfMap::Close(const Napi::CallbackInfo& info) {
  if (spec_.fd >= 0) close(spec_.fd);
  spec_.fd = -1;
  return info.Env().Undefined();
}

// The key and value types of the map as the kernel holds them: the BTF the map was created
// with (bpf_map_info.btf_id, loaded with btf__load_from_kernel_by_id) — the layout of a map
// pinned by an older agent, whatever this agent's object says. Null when the map has no BTF.
Napi::Value BpfMap::BtfLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_obj_get_info_by_fd";
  int fd = Fd(env, call);
  struct bpf_map_info kinfo;
  memset(&kinfo, 0, sizeof(kinfo));
  __u32 len = sizeof(kinfo);
  int err = bpf_obj_get_info_by_fd(fd, &kinfo, &len);
  if (err) throw NativeError(env, call, spec_.name, -err);
  if (kinfo.btf_id == 0) return env.Null();
  struct btf* btf = btf__load_from_kernel_by_id(kinfo.btf_id);
  if (!btf) throw NativeError(env, "btf__load_from_kernel_by_id", spec_.name, errno);
  Napi::Object out = Napi::Object::New(env);
  try {
    out.Set("key", BtfTypeValue(env, btf, kinfo.btf_key_type_id));
    out.Set("value", BtfTypeValue(env, btf, kinfo.btf_value_type_id));
  } catch (...) {
    btf__free(btf);
    throw;
  }
  btf__free(btf);
  return out;
}

Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "bpf_obj_get", "path");
  // openPinnedMap(path, { readOnly }): a read-only fd, so the kernel itself refuses writes
  // through it (sluicectl reading the maps while the agent is down).
  bool read_only = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value v = info[1].As<Napi::Object>().Get("readOnly");
    read_only = v.IsBoolean() && v.As<Napi::Boolean>().Value();
  }
  LIBBPF_OPTS(bpf_obj_get_opts, get_opts, .file_flags = read_only ? BPF_F_RDONLY : 0u);
  int fd = bpf_obj_get_opts(path.c_str(), &get_opts);
  if (fd < 0) throw NativeError(env, "bpf_obj_get", path, -fd);
  std::string kind = FdKind(fd);
  if (kind != "anon_inode:bpf-map") {
    close(fd);
    throw UsageError(env, "bpf_obj_get", path + " is not a pinned map (" + kind + ")");
  }
  MapSpec spec;
  int err = MapSpecFromKernel(fd, &spec, false);
  if (err) {
    close(fd);
    throw NativeError(env, "bpf_obj_get_info_by_fd", path, err);
  }
  spec.fd = fd;
  return BpfMap::Create(env, spec);
}

// bpf_map_get_fd_by_id: a handle on a map by its kernel id (e.g. one of a loaded program's maps,
// from its bpf_prog_info map_ids). Its name is the kernel's (cut at 15 characters).
Napi::Value OpenMapById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_get_fd_by_id";
  int64_t id = IntArg(info, 0, call, "id", 0, UINT32_MAX, 0);
  if (id == 0) throw UsageError(env, call, "expected a map id (1 or more)");
  int fd = bpf_map_get_fd_by_id(static_cast<uint32_t>(id));
  if (fd < 0) throw NativeError(env, call, std::to_string(id), -fd);
  MapSpec spec;
  int err = MapSpecFromKernel(fd, &spec, false);
  if (err) {
    close(fd);
    throw NativeError(env, "bpf_obj_get_info_by_fd", std::to_string(id), err);
  }
  spec.fd = fd;
  return BpfMap::Create(env, spec);
}

}  // namespace sluice
