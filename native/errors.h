// Turning errno values into JS errors: every failure the addon reports is a JS Error with
// `code` (the errno name), `errno` (positive), `call` (the libbpf or syscall function) and a
// message "call(subject): strerror".
#ifndef SLUICE_NATIVE_ERRORS_H
#define SLUICE_NATIVE_ERRORS_H

#include <napi.h>

#include <string>

namespace sluice {

// 'ENOENT' for ENOENT, 'ENOTSUPP' for the kernel-internal 524, 'LIBBPF_FORMAT' for libbpf's
// own codes; 'ERRNO_<n>' for anything unknown.
std::string ErrnoName(int err);

// The human text for err (libbpf_strerror, which also knows libbpf's own codes).
std::string ErrnoMessage(int err);

// err is a positive errno. subject names the object the call was about (map name, path...);
// detail, when given, is appended to the message.
Napi::Error NativeError(Napi::Env env, const std::string& call, const std::string& subject, int err,
                        const std::string& detail = "");

// Bad input from JS: code 'EINVAL' (or the given errno), message taken verbatim.
Napi::Error UsageError(Napi::Env env, const std::string& call, const std::string& message,
                       int err = 22);

}  // namespace sluice

#endif  // SLUICE_NATIVE_ERRORS_H
