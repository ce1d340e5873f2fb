#include "log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>

namespace sluice {

namespace {

// Bounds: a flood of debug lines must not grow memory without limit between drains. A verifier
// log arrives as one message and may be megabytes; the full log is attached to the load error
// anyway, so the copy here is truncated.
constexpr size_t kMaxLines = 4096;
constexpr size_t kMaxMessageBytes = 64 * 1024;

struct Line {
  libbpf_print_level level;
  std::string message;
};

std::mutex g_mutex;
std::deque<Line> g_lines;
size_t g_dropped = 0;

int PrintCallback(enum libbpf_print_level level, const char* format, va_list args) {
  va_list sizing;
  va_copy(sizing, args);
  char small[512];
  int needed = vsnprintf(small, sizeof(small), format, sizing);
  va_end(sizing);
  if (needed < 0) return 0;

  std::string message;
  if (static_cast<size_t>(needed) < sizeof(small)) {
    message.assign(small, static_cast<size_t>(needed));
  } else {
    size_t keep = std::min(static_cast<size_t>(needed), kMaxMessageBytes);
    message.resize(keep + 1);
    vsnprintf(&message[0], keep + 1, format, args);
    message.resize(keep);
    if (static_cast<size_t>(needed) > keep) message += "\n...[truncated by sluice]";
  }
  while (!message.empty() && message.back() == '\n') message.pop_back();

  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_lines.size() >= kMaxLines) {
    g_lines.pop_front();
    ++g_dropped;
  }
  g_lines.push_back(Line{level, std::move(message)});
  return needed;
}

const char* LevelName(libbpf_print_level level) {
  switch (level) {
    case LIBBPF_WARN:
      return "warn";
    case LIBBPF_INFO:
      return "info";
    default:
      return "debug";
  }
}

}  // namespace

void InstallLibbpfPrint() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(PrintCallback); });
}

Napi::Value DrainLog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::deque<Line> lines;
  size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    lines.swap(g_lines);
    dropped = g_dropped;
    g_dropped = 0;
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t index = 0;
  auto push = [&](const char* level, const std::string& message) {
    Napi::Object line = Napi::Object::New(env);
    line.Set("level", level);
    line.Set("message", message);
    out.Set(index++, line);
  };
  if (dropped > 0) {
    push("warn",
         "sluice: " + std::to_string(dropped) + " libbpf messages dropped (log buffer full)");
  }
  for (const Line& line : lines) push(LevelName(line.level), line.message);
  return out;
}

}  // namespace sluice
