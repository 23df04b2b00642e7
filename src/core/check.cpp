// Fatal check reporting with rank and host, so a failure in a 1,024-rank job names its origin.
#include "core/check.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace hydraulis::core {

namespace {
std::atomic<int> g_rank{-1};
}

void set_process_rank(int rank) { g_rank.store(rank); }
int process_rank() { return g_rank.load(); }

void check_failed(const char* condition, const char* file, int line, const std::string& message) {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  std::fprintf(stderr, "hydraulis: check failed: %s\n  %s\n  at %s:%d (rank %d, host %s)\n",
               condition, message.c_str(), file, line, process_rank(), host);
  std::fflush(stderr);
  std::abort();
}

}  // namespace hydraulis::core
