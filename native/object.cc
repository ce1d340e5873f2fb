#include "object.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "btf_struct.h"
#include "errors.h"
#include "fd_util.h"
#include "map.h"
#include "program.h"
#include "rodata.h"

namespace sluice {

namespace {

uint32_t KernelProgId(int fd) {
  if (fd < 0) return 0;
  struct bpf_prog_info kinfo;
  memset(&kinfo, 0, sizeof(kinfo));
  __u32 len = sizeof(kinfo);
  return bpf_obj_get_info_by_fd(fd, &kinfo, &len) == 0 ? kinfo.id : 0;
}

// The handle's description of the kernel program `fd` (the handle takes it) with id `id`, from
// the object's definition `prog`: name, section and expected attach type, which the kernel does
// not all report.
ProgramSpec SpecFromDefinition(bpf_program* prog, int fd, uint32_t id) {
  ProgramSpec spec;
  spec.fd = fd;
  spec.name = bpf_program__name(prog);
  spec.section = bpf_program__section_name(prog);
  spec.type = static_cast<uint32_t>(bpf_program__type(prog));
  spec.expected_attach_type = static_cast<uint32_t>(bpf_program__expected_attach_type(prog));
  spec.id = id;
  return spec;
}

uint32_t KernelMapId(int fd) {
  if (fd < 0) return 0;
  MapSpec spec;
  return MapSpecFromKernel(fd, &spec, true) == 0 ? spec.id : 0;
}

}  // namespace

Napi::Function BpfObject::Define(Napi::Env env) {
  return DefineClass(env, "BpfObject",
                     {
                         InstanceAccessor<&BpfObject::Path>("path"),
                         InstanceMethod<&BpfObject::SetRodata>("setRodata"),
                         InstanceMethod<&BpfObject::RodataVariables>("rodataVariables"),
                         InstanceMethod<&BpfObject::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&BpfObject::Load>("load"),
                         InstanceMethod<&BpfObject::Maps>("maps"),
                         InstanceMethod<&BpfObject::Programs>("programs"),
                         InstanceMethod<&BpfObject::Map>("map"),
                         InstanceMethod<&BpfObject::Program>("program"),
                         InstanceMethod<&BpfObject::LoadedProgram>("loadedProgram"),
                         InstanceMethod<&BpfObject::MapInitialValue>("mapInitialValue"),
                         InstanceMethod<&BpfObject::BtfStruct>("btfStruct"),
                         InstanceMethod<&BpfObject::BtfEnum>("btfEnum"),
                         InstanceMethod<&BpfObject::MapBtfLayout>("mapBtfLayout"),
                         InstanceMethod<&BpfObject::Close>("close"),
                     });
}

BpfObject::BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_object__open_file";
  path_ = StringArg(info, 0, call, "path");
  std::string pin_root;
  bool has_pin_root = false;
  if (!info[1].IsUndefined()) {
    has_pin_root = StringField(ObjectArg(info, 1, call, "options"), "pinRoot", call, &pin_root);
  }
  bpf_object_open_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  if (has_pin_root) opts.pin_root_path = pin_root.c_str();
  obj_ = bpf_object__open_file(path_.c_str(), &opts);
  if (!obj_) throw NativeError(env, call, path_, errno ? errno : EINVAL);
}

// Objects may be released by the GC: closing one only drops libbpf's fds; handles hold their own
// duplicates, and attachments hold references of their own.
BpfObject::~BpfObject() {
  if (obj_) bpf_object__close(obj_);
}

bpf_object* BpfObject::Usable(Napi::Env env, const char* call) const {
  if (state_ == State::kClosed)
    throw UsageError(env, call, "object " + path_ + " is closed", EBADF);
  if (state_ == State::kLoading) {
    throw UsageError(env, call, "object " + path_ + " is being loaded", EBUSY);
  }
  return obj_;
}

bpf_object* BpfObject::Configurable(Napi::Env env, const char* call) const {
  bpf_object* obj = Usable(env, call);
  if (state_ != State::kOpened) {
    throw UsageError(env, call,
                     "object " + path_ + " was already loaded; configure it before load()", EBUSY);
  }
  return obj;
}

bpf_object* BpfObject::Loaded(Napi::Env env, const char* call) const {
  bpf_object* obj = Usable(env, call);
  if (state_ != State::kLoaded) {
    throw UsageError(env, call, "object " + path_ + " is not loaded; call load() first");
  }
  return obj;
}

Napi::Value BpfObject::Path(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), path_);
}

Napi::Value BpfObject::SetRodata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map__set_initial_value";
  bpf_object* obj = Configurable(env, call);
  std::string name = StringArg(info, 0, call, "name");
  Napi::Buffer<uint8_t> value = BufferArg(info, 1, call, "value");
  WriteRodataVar(env, obj, name, value.Data(), value.Length());
  return env.Undefined();
}

Napi::Value BpfObject::RodataVariables(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Usable(env, "rodataVariables");
  Napi::Array out = Napi::Array::New(env);
  uint32_t index = 0;
  for (const RodataVar& var : ListRodataVars(obj)) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", var.name);
    entry.Set("section", var.section);
    entry.Set("offset", var.offset);
    entry.Set("size", var.size);
    out.Set(index++, entry);
  }
  return out;
}

Napi::Value BpfObject::SetMaxEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map__set_max_entries";
  bpf_object* obj = Configurable(env, call);
  std::string name = StringArg(info, 0, call, "mapName");
  if (info[1].IsUndefined()) throw UsageError(env, call, "maxEntries is required");
  int64_t entries = IntArg(info, 1, call, "maxEntries", 1, UINT32_MAX, 1);
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) throw UsageError(env, call, "no map '" + name + "' in " + path_, ENOENT);
  int err = bpf_map__set_max_entries(map, static_cast<__u32>(entries));
  if (err) throw NativeError(env, call, name, -err);
  return env.Undefined();
}

Napi::Value BpfObject::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Usable(env, "maps");
  Napi::Array out = Napi::Array::New(env);
  uint32_t index = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    Napi::Object entry = Napi::Object::New(env);
    int fd = bpf_map__fd(map);
    entry.Set("name", bpf_map__name(map));
    entry.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
    entry.Set("keySize", bpf_map__key_size(map));
    entry.Set("valueSize", bpf_map__value_size(map));
    entry.Set("maxEntries", bpf_map__max_entries(map));
    entry.Set("id", KernelMapId(fd));
    entry.Set("fd", fd);
    const char* pin_path = bpf_map__pin_path(map);
    if (pin_path) entry.Set("pinPath", pin_path);
    out.Set(index++, entry);
  }
  return out;
}

Napi::Value BpfObject::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_object* obj = Usable(env, "programs");
  Napi::Array out = Napi::Array::New(env);
  uint32_t index = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    Napi::Object entry = Napi::Object::New(env);
    int fd = bpf_program__fd(prog);
    entry.Set("name", bpf_program__name(prog));
    entry.Set("section", bpf_program__section_name(prog));
    entry.Set("type", static_cast<uint32_t>(bpf_program__type(prog)));
    entry.Set("id", KernelProgId(fd));
    entry.Set("fd", fd);
    out.Set(index++, entry);
  }
  return out;
}

Napi::Value BpfObject::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_object__find_map_by_name";
  std::string name = StringArg(info, 0, call, "name");
  bpf_object* obj = Loaded(env, call);
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) throw UsageError(env, call, "no map '" + name + "' in " + path_, ENOENT);
  if (bpf_map__fd(map) < 0)
    throw UsageError(env, call, "map '" + name + "' was not created", ENOENT);
  MapSpec spec;
  spec.name = bpf_map__name(map);
  int err = MapSpecFromKernel(bpf_map__fd(map), &spec, true);
  if (err) throw NativeError(env, "bpf_obj_get_info_by_fd", name, err);
  spec.fd = DupCloexec(bpf_map__fd(map));
  if (spec.fd < 0) throw NativeError(env, "fcntl", name, errno);
  return BpfMap::Create(env, spec);
}

Napi::Value BpfObject::Program(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_object__find_program_by_name";
  std::string name = StringArg(info, 0, call, "name");
  bpf_object* obj = Loaded(env, call);
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) throw UsageError(env, call, "no program '" + name + "' in " + path_, ENOENT);
  if (bpf_program__fd(prog) < 0) {
    throw UsageError(env, call, "program '" + name + "' was not loaded", ENOENT);
  }
  int fd = DupCloexec(bpf_program__fd(prog));
  if (fd < 0) throw NativeError(env, "fcntl", name, errno);
  return BpfProgram::Create(env, SpecFromDefinition(prog, fd, KernelProgId(fd)));
}

// loadedProgram(name, pinPath | id): the object's program `name` as an earlier load of this same
// file left it in the kernel, from its pin (bpf_obj_get) or its id (bpf_prog_get_fd_by_id), with
// the section and expected attach type of the object's definition (the kernel does not report
// the latter). Usable before load. The kernel's program must have the definition's type and
// name (cut at 15 characters), or EINVAL.
Napi::Value BpfObject::LoadedProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "loadedProgram", "name");
  bool by_path = info[1].IsString();
  const char* call = by_path ? "bpf_obj_get" : "bpf_prog_get_fd_by_id";
  bpf_object* obj = Usable(env, call);
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) throw UsageError(env, call, "no program '" + name + "' in " + path_, ENOENT);
  std::string source;
  int fd;
  if (by_path) {
    source = info[1].As<Napi::String>().Utf8Value();
    fd = bpf_obj_get(source.c_str());
  } else {
    int64_t id = IntArg(info, 1, call, "pinPathOrId", 1, UINT32_MAX, 0);
    source = "id " + std::to_string(id);
    fd = bpf_prog_get_fd_by_id(static_cast<uint32_t>(id));
  }
  if (fd < 0) throw NativeError(env, call, name + " (" + source + ")", -fd);
  struct bpf_prog_info pinfo;
  memset(&pinfo, 0, sizeof(pinfo));
  uint32_t len = sizeof(pinfo);
  int err = bpf_obj_get_info_by_fd(fd, &pinfo, &len);
  if (err) {
    close(fd);
    throw NativeError(env, "bpf_obj_get_info_by_fd", name + " (" + source + ")", -err);
  }
  std::string kernel_name(pinfo.name, strnlen(pinfo.name, sizeof(pinfo.name)));
  if (pinfo.type != static_cast<uint32_t>(bpf_program__type(prog)) ||
      kernel_name != name.substr(0, sizeof(pinfo.name) - 1)) {
    close(fd);
    throw UsageError(env, call,
                     source + " is program '" + kernel_name + "' of type " +
                         std::to_string(pinfo.type) + ", not " + path_ + "'s '" + name + "'",
                     EINVAL);
  }
  // pinfo.type is the definition's type: checked above.
  return BpfProgram::Create(env, SpecFromDefinition(prog, fd, pinfo.id));
}

// mapInitialValue(name): the bytes an internal map (.rodata, .data, .bss) is created with, as
// configured so far (bpf_map__initial_value); null for other maps.
Napi::Value BpfObject::MapInitialValue(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map__initial_value";
  std::string name = StringArg(info, 0, call, "name");
  bpf_object* obj = Usable(env, call);
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) throw UsageError(env, call, "no map '" + name + "' in " + path_, ENOENT);
  size_t size = 0;
  const void* value = bpf_map__initial_value(map, &size);
  if (!value) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(value), size);
}

Napi::Value BpfObject::BtfStruct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "btfStruct", "name");
  bpf_object* obj = Usable(env, "btfStruct");
  return BtfStructValue(env, bpf_object__btf(obj), name);
}

Napi::Value BpfObject::BtfEnum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "btfEnum", "name");
  bpf_object* obj = Usable(env, "btfEnum");
  return BtfEnumValue(env, bpf_object__btf(obj), name);
}

// A map's key and value types in the object's BTF; usable before load (libbpf reads them from
// the map definition at open).
Napi::Value BpfObject::MapBtfLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "mapBtfLayout";
  std::string name = StringArg(info, 0, call, "name");
  bpf_object* obj = Usable(env, call);
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) throw UsageError(env, call, "no map '" + name + "' in " + path_, ENOENT);
  const struct btf* btf = bpf_object__btf(obj);
  if (!btf) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("key", BtfTypeValue(env, btf, bpf_map__btf_key_type_id(map)));
  out.Set("value", BtfTypeValue(env, btf, bpf_map__btf_value_type_id(map)));
  return out;
}

Napi::Value BpfObject::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (state_ == State::kClosed) return env.Undefined();
  Usable(env, "bpf_object__close");
  bpf_object__close(obj_);
  obj_ = nullptr;
  state_ = State::kClosed;
  return env.Undefined();
}

Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); ++i) args.push_back(info[i]);
  return Data(env).object.New(args);
}

}  // namespace sluice
