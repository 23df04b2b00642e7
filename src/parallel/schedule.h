// The 1F1B pipeline schedule as a pure table (one op list per stage), its checker (simulated
// execution with the data dependencies between stages) and per-stage peak in-flight micro-batches
// for memory forecasts. docs/parallel.md ("1F1B schedule").
// Tests: tests/parallel/schedule_test.cpp.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace hydraulis::parallel {

struct PipeOp {
  enum class Kind { kForward, kBackward };
  using enum Kind;  // PipeOp::kForward
  Kind kind = kForward;
  int micro_batch = 0;
  bool operator==(const PipeOp&) const = default;
  std::string to_string() const;  // "F3", "B0"
};

// schedule[stage] = the ops that stage runs, in order.
using PipeSchedule = std::vector<std::vector<PipeOp>>;

// 1F1B (PipeDream-Flush) for pp stages and m micro-batches. Stage s runs
//   warm-up:   w = min(pp − s − 1, m) forwards F0 .. F(w−1)
//   steady:    for i in 0 .. m − w − 1: F(w + i), B(i)
//   cool-down: B(m − w) .. B(m − 1)
// so at most min(pp − s, m) micro-batches are in flight on stage s. pp 3, m 4:
//   stage 0: F0 F1 F2 B0 F3 B1 B2 B3
//   stage 1: F0 F1 B0 F2 B1 F3 B2 B3
//   stage 2: F0 B0 F1 B1 F2 B2 F3 B3
PipeSchedule one_f_one_b(int pp, int num_micro_batches);

// Runs the table in rounds of unit-time ops: in round t every stage whose next op is ready runs it,
// where F(mb, s) needs F(mb, s − 1) and B(mb, s) needs F(mb, s) and B(mb, s + 1) from earlier
// rounds. Returns ticks[stage][i] = the round of op i. Errors: wrong stage count, an op outside
// [0, m), a missing or duplicated op, or a deadlock (names every blocked stage and its op).
core::StatusOr<std::vector<std::vector<int>>> schedule_ticks(const PipeSchedule& schedule, int pp,
                                                             int num_micro_batches);
core::Status validate_schedule(const PipeSchedule& schedule, int pp, int num_micro_batches);

// Peak over the table of (forwards run − backwards run) per stage: the number of micro-batches
// whose activations a stage holds at once. For one_f_one_b: min(pp − s, m).
std::vector<int> peak_in_flight(const PipeSchedule& schedule);

// One line per stage: "stage 0: F0 F1 F2 B0 F3 B1 B2 B3".
std::string format_schedule(const PipeSchedule& schedule);

}  // namespace hydraulis::parallel
