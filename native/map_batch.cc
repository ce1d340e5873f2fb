// Batch ops (BPF_MAP_*_BATCH): one syscall per chunk instead of one per element, which is what
// makes programming 10k+ services fast. Map types without batch support fail with ENOTSUPP
// (kernel-internal 524) or EINVAL; the TS layer falls back to element ops.
#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <cerrno>

#include <vector>

#include "args.h"
#include "errors.h"
#include "map.h"

namespace sluice {

namespace {

constexpr uint32_t kFirstChunk = 1024;
constexpr uint32_t kMaxChunk = 1u << 20;

bpf_map_batch_opts BatchOpts(uint64_t elem_flags) {
  bpf_map_batch_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.elem_flags = elem_flags;
  return opts;
}

// done is the count the kernel wrote back; when it failed before touching any element it never
// writes it, so the requested count comes back unchanged: that means nothing was processed.
Napi::Error BatchError(Napi::Env env, const char* call, const std::string& name, int err,
                       uint32_t done, uint32_t requested) {
  uint32_t processed = done < requested ? done : 0;
  Napi::Error error = NativeError(env, call, name, err);
  error.Value().Set("processed", Napi::Number::New(env, processed));
  return error;
}

}  // namespace

Napi::Value BpfMap::LookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_lookup_batch";
  int fd = Fd(env, call);
  const size_t key_size = spec_.key_size;
  const size_t value_size = ValueBufSize();
  // The resume token is a bucket index (hash maps) or a key (arrays): key_size covers both.
  std::vector<uint8_t> in_batch(std::max<size_t>(key_size, 8));
  std::vector<uint8_t> out_batch(in_batch.size());
  std::vector<uint8_t> keys;
  std::vector<uint8_t> values;
  bpf_map_batch_opts opts = BatchOpts(0);
  uint32_t chunk = std::max<uint32_t>(1, std::min(spec_.max_entries, kFirstChunk));
  // An array holds exactly max_entries elements: one allocation, read in one call, instead of
  // a vector grown chunk by chunk (which left tens of MB in the allocator after a 12 MB read).
  if (spec_.type == BPF_MAP_TYPE_ARRAY || spec_.type == BPF_MAP_TYPE_PERCPU_ARRAY) {
    chunk = std::max<uint32_t>(1, spec_.max_entries);
    keys.reserve(static_cast<size_t>(chunk) * key_size);
    values.reserve(static_cast<size_t>(chunk) * value_size);
  }
  size_t total = 0;
  bool first = true;
  for (;;) {
    keys.resize((total + chunk) * key_size);
    values.resize((total + chunk) * value_size);
    __u32 count = chunk;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : in_batch.data(), out_batch.data(),
                                   keys.data() + total * key_size,
                                   values.data() + total * value_size, &count, &opts);
    if (err && err != -ENOENT) {
      // A hash bucket holds more entries than fit in the chunk: nothing was copied; grow.
      if (err == -ENOSPC && count == 0 && chunk < kMaxChunk) {
        chunk *= 2;
        continue;
      }
      throw NativeError(env, call, spec_.name, -err);
    }
    total += count;
    if (err == -ENOENT) break;
    in_batch.swap(out_batch);
    first = false;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), total * key_size));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), total * value_size));
  out.Set("count", Napi::Number::New(env, static_cast<double>(total)));
  // The copies now live in JS Buffers; the scratch vectors are freed here. Whether glibc gives
  // large blocks back to the system is the process's memory policy (native/memory.cc).
  return out;
}

Napi::Value BpfMap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_update_batch";
  int fd = Fd(env, call);
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, call, "keys");
  Napi::Buffer<uint8_t> values = BufferArg(info, 1, call, "values");
  if (info[2].IsUndefined()) throw UsageError(env, call, "count is required");
  uint32_t count = static_cast<uint32_t>(IntArg(info, 2, call, "count", 0, UINT32_MAX, 0));
  uint64_t flags = static_cast<uint64_t>(IntArg(info, 3, call, "flags", 0, 7, BPF_ANY));
  // The kernel takes no NOEXIST/EXIST semantics for batches, only BPF_F_LOCK.
  if (flags != BPF_ANY && flags != BPF_F_LOCK) {
    throw UsageError(
        env, call,
        "flags must be 0 (BPF_ANY) or 4 (BPF_F_LOCK) for batches, got " + std::to_string(flags));
  }
  CheckSize(env, call, "keys", keys.Length(), static_cast<size_t>(count) * spec_.key_size);
  CheckSize(env, call, "values", values.Length(), static_cast<size_t>(count) * ValueBufSize());
  if (count == 0) return Napi::Number::New(env, 0);
  bpf_map_batch_opts opts = BatchOpts(flags);
  __u32 done = count;
  int err = bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts);
  if (err) throw BatchError(env, call, spec_.name, -err, done, count);
  return Napi::Number::New(env, done);
}

Napi::Value BpfMap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* call = "bpf_map_delete_batch";
  int fd = Fd(env, call);
  Napi::Buffer<uint8_t> keys = BufferArg(info, 0, call, "keys");
  if (info[1].IsUndefined()) throw UsageError(env, call, "count is required");
  uint32_t count = static_cast<uint32_t>(IntArg(info, 1, call, "count", 0, UINT32_MAX, 0));
  CheckSize(env, call, "keys", keys.Length(), static_cast<size_t>(count) * spec_.key_size);
  if (count == 0) return Napi::Number::New(env, 0);
  bpf_map_batch_opts opts = BatchOpts(0);
  __u32 done = count;
  int err = bpf_map_delete_batch(fd, keys.Data(), &done, &opts);
  if (err) throw BatchError(env, call, spec_.name, -err, done, count);
  return Napi::Number::New(env, done);
}

}  // namespace sluice
