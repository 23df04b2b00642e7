// Logging implementation: one fwrite per message so lines of concurrent threads do not interleave.
#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/check.h"

namespace hydraulis::core {

namespace {

LogLevel level_from_env() {
  const char* env = std::getenv("HYD_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<int> g_level{static_cast<int>(level_from_env())};
const auto g_start = std::chrono::steady_clock::now();

const char* level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "D";
    case LogLevel::kInfo: return "I";
    case LogLevel::kWarn: return "W";
    case LogLevel::kError: return "E";
  }
  return "?";
}

}  // namespace

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void log_write(LogLevel level, std::string_view message) {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
  std::string line;
  int rank = process_rank();
  if (rank >= 0) {
    line = fmt::format("[{} {:8.3f}s r{}] {}\n", level_tag(level), seconds, rank, message);
  } else {
    line = fmt::format("[{} {:8.3f}s] {}\n", level_tag(level), seconds, message);
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace hydraulis::core
