#include "fd_util.h"

#include <fcntl.h>
#include <unistd.h>

namespace sluice {

std::string FdKind(int fd) {
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  char target[128];
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) return "";
  return std::string(target, static_cast<size_t>(n));
}

int DupCloexec(int fd) { return fcntl(fd, F_DUPFD_CLOEXEC, 0); }

}  // namespace sluice
