// Small helpers around raw file descriptors.
#ifndef SLUICE_NATIVE_FD_UTIL_H
#define SLUICE_NATIVE_FD_UTIL_H

#include <string>

namespace sluice {

// What an fd refers to, as /proc/self/fd shows it: "anon_inode:bpf-map", "anon_inode:bpf-prog",
// "anon_inode:bpf-link", ... Empty when unknown.
std::string FdKind(int fd);

// dup() with O_CLOEXEC; -1 with errno on failure. Handles own a private duplicate so that
// closing a BPF object never invalidates (or, worse, lets the kernel reuse) an fd a handle holds.
int DupCloexec(int fd);

}  // namespace sluice

#endif  // SLUICE_NATIVE_FD_UTIL_H
