// The real `hydraulis` binary ($HYD_BINARY_DIR/bin/hydraulis) run as a user runs it, for the CLI
// tests: its exit code and its output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace hydraulis::testing {

inline std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}
inline std::string source(const std::string& relative) {
  return env_or("HYD_SOURCE_DIR", ".") + "/" + relative;
}

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs the binary with `args` (no shell metacharacters in them), capturing its output.
inline CliRun hydraulis(const std::vector<std::string>& args) {
  std::string command = env_or("HYD_BINARY_DIR", "build") + "/bin/hydraulis";
  for (const std::string& a : args) command += " '" + a + "'";
  command += " 2>&1";
  CliRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.output.append(buffer, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace hydraulis::testing
