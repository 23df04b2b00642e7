// A spawn-per-call thread team over an atomic chunk counter: no pool, no global mutable state.
#include "kernels/cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"

namespace hydraulis::cpu {

namespace {

thread_local bool t_inside_parallel_for = false;

int threads_from_environment() {
  const char* value = std::getenv("HYD_CPU_THREADS");
  if (value != nullptr && *value != '\0') {
    int n = std::atoi(value);
    HYD_CHECK(n >= 1, "HYD_CPU_THREADS must be a positive integer, got '{}'", value);
    return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

int max_threads() {
  static const int threads = threads_from_environment();
  return threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  HYD_CHECK(n >= 0 && grain >= 1, "parallel_for(n = {}, grain = {})", n, grain);
  if (n == 0) return;
  int64_t chunks = (n + grain - 1) / grain;
  int64_t team = std::min<int64_t>(max_threads(), chunks);
  if (team <= 1 || t_inside_parallel_for) {
    body(0, n);
    return;
  }
  std::atomic<int64_t> next_chunk{0};
  auto worker = [&] {
    t_inside_parallel_for = true;
    for (int64_t c = next_chunk.fetch_add(1); c < chunks; c = next_chunk.fetch_add(1)) {
      body(c * grain, std::min(n, (c + 1) * grain));
    }
    t_inside_parallel_for = false;
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(team - 1));
  for (int64_t i = 0; i + 1 < team; ++i) threads.emplace_back(worker);
  worker();
  for (std::thread& thread : threads) thread.join();
}

}  // namespace hydraulis::cpu
