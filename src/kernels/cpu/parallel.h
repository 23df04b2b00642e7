// parallel_for: the CPU kernels' only threading primitive. Work items [0, n) are handed out in
// chunks of `grain` to a team of std::threads (dynamic, so causal attention's uneven rows balance);
// each item must write disjoint memory, so results never depend on the thread count.
// Team size: HYD_CPU_THREADS if set, else std::thread::hardware_concurrency(). Nested calls run
// inline. Tests: tests/kernels/parallel_test.cpp.
#pragma once

#include <cstdint>
#include <functional>

namespace hydraulis::cpu {

// Threads a parallel_for may use (>= 1).
int max_threads();

// Calls body(begin, end) on disjoint chunks covering [0, n); returns when all are done.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace hydraulis::cpu
