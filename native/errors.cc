#include "errors.h"

#include <bpf/libbpf.h>
#include <cerrno>

namespace sluice {

namespace {

// The kernel's internal "operation not supported" (include/linux/errno.h): user space sees it
// from BPF batch ops on map types that lack them. libc has no name for it.
constexpr int kENOTSUPP = 524;

const char* KnownErrnoName(int err) {
  switch (err) {
    // clang-format off
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case EPIPE: return "EPIPE";
    case ERANGE: return "ERANGE";
    case EDEADLK: return "EDEADLK";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case ENOMSG: return "ENOMSG";
    case ENODATA: return "ENODATA";
    case EPROTO: return "EPROTO";
    case EBADMSG: return "EBADMSG";
    case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOBUFS: return "ENOBUFS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case ENETDOWN: return "ENETDOWN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECANCELED: return "ECANCELED";
    case kENOTSUPP: return "ENOTSUPP";
    case LIBBPF_ERRNO__LIBELF: return "LIBBPF_LIBELF";
    case LIBBPF_ERRNO__FORMAT: return "LIBBPF_FORMAT";
    case LIBBPF_ERRNO__KVERSION: return "LIBBPF_KVERSION";
    case LIBBPF_ERRNO__ENDIAN: return "LIBBPF_ENDIAN";
    case LIBBPF_ERRNO__INTERNAL: return "LIBBPF_INTERNAL";
    case LIBBPF_ERRNO__RELOC: return "LIBBPF_RELOC";
    case LIBBPF_ERRNO__LOAD: return "LIBBPF_LOAD";
    case LIBBPF_ERRNO__VERIFY: return "LIBBPF_VERIFY";
    case LIBBPF_ERRNO__PROG2BIG: return "LIBBPF_PROG2BIG";
    case LIBBPF_ERRNO__KVER: return "LIBBPF_KVER";
    case LIBBPF_ERRNO__PROGTYPE: return "LIBBPF_PROGTYPE";
    case LIBBPF_ERRNO__WRNGPID: return "LIBBPF_WRNGPID";
    case LIBBPF_ERRNO__INVSEQ: return "LIBBPF_INVSEQ";
    case LIBBPF_ERRNO__NLPARSE: return "LIBBPF_NLPARSE";
    default: return nullptr;
      // clang-format on
  }
}

Napi::Error MakeError(Napi::Env env, const std::string& message, const std::string& code, int err,
                      const std::string& call) {
  Napi::Error error = Napi::Error::New(env, message);
  Napi::Object obj = error.Value();
  obj.Set("code", Napi::String::New(env, code));
  obj.Set("errno", Napi::Number::New(env, err));
  obj.Set("call", Napi::String::New(env, call));
  return error;
}

}  // namespace

std::string ErrnoName(int err) {
  const char* name = KnownErrnoName(err);
  return name ? std::string(name) : "ERRNO_" + std::to_string(err);
}

std::string ErrnoMessage(int err) {
  if (err == kENOTSUPP) return "Operation not supported by this map or program type";
  char buf[256];
  if (libbpf_strerror(err, buf, sizeof(buf)) != 0 && buf[0] == '\0') {
    return "Unknown error " + std::to_string(err);
  }
  return buf;
}

Napi::Error NativeError(Napi::Env env, const std::string& call, const std::string& subject, int err,
                        const std::string& detail) {
  std::string message = call + "(" + subject + "): " + ErrnoMessage(err) + detail;
  return MakeError(env, message, ErrnoName(err), err, call);
}

Napi::Error UsageError(Napi::Env env, const std::string& call, const std::string& message,
                       int err) {
  return MakeError(env, call + ": " + message, ErrnoName(err), err, call);
}

}  // namespace sluice
