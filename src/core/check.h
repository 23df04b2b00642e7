// Always-on invariant checks (never compiled out, unlike assert). A failed check is a bug in
// Hydraulis, not bad user input (that is a Status): it prints the condition, the formatted
// values, file:line, rank and host, then aborts. Tests: tests/core/check_test.cpp (death tests).
#pragma once

#include <fmt/format.h>

#include <string>

namespace hydraulis::core {

[[noreturn]] void check_failed(const char* condition, const char* file, int line,
                               const std::string& message);

// Rank shown in check/log prefixes; set once by the launcher (MPI rank), -1 when single-process.
void set_process_rank(int rank);
int process_rank();

}  // namespace hydraulis::core

// HYD_CHECK(n > 0, "n = {}", n);
#define HYD_CHECK(cond, ...)                                                               \
  do {                                                                                     \
    if (!(cond)) [[unlikely]] {                                                            \
      ::hydraulis::core::check_failed(#cond, __FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
    }                                                                                      \
  } while (0)
