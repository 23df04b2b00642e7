// 1F1B table, its dependency-simulating checker and in-flight counts (docs/parallel.md).
#include "parallel/schedule.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/check.h"

namespace hydraulis::parallel {

std::string PipeOp::to_string() const {
  return fmt::format("{}{}", kind == kForward ? 'F' : 'B', micro_batch);
}

PipeSchedule one_f_one_b(int pp, int num_micro_batches) {
  HYD_CHECK(pp >= 1 && num_micro_batches >= 0, "1F1B needs pp >= 1 and m >= 0, got pp {}, m {}", pp,
            num_micro_batches);
  const int m = num_micro_batches;
  PipeSchedule schedule(static_cast<size_t>(pp));
  for (int s = 0; s < pp; ++s) {
    std::vector<PipeOp>& ops = schedule[static_cast<size_t>(s)];
    const int warm_up = std::min(pp - s - 1, m);
    for (int i = 0; i < warm_up; ++i) ops.push_back({PipeOp::kForward, i});
    for (int i = 0; i < m - warm_up; ++i) {
      ops.push_back({PipeOp::kForward, warm_up + i});
      ops.push_back({PipeOp::kBackward, i});
    }
    for (int i = m - warm_up; i < m; ++i) ops.push_back({PipeOp::kBackward, i});
  }
  return schedule;
}

namespace {

// Every stage runs each F(mb) and B(mb), mb in [0, m), exactly once.
core::Status check_ops(const PipeSchedule& schedule, int pp, int m) {
  if (static_cast<int>(schedule.size()) != pp) {
    return core::invalid_argument("schedule has {} stages, expected pp = {}", schedule.size(), pp);
  }
  for (int s = 0; s < pp; ++s) {
    std::vector<int> seen(2 * static_cast<size_t>(m), 0);
    for (const PipeOp& op : schedule[static_cast<size_t>(s)]) {
      if (op.micro_batch < 0 || op.micro_batch >= m) {
        return core::invalid_argument("stage {} runs {}: micro-batch outside [0, {})", s,
                                      op.to_string(), m);
      }
      const size_t slot = 2 * static_cast<size_t>(op.micro_batch) + (op.kind == PipeOp::kBackward);
      if (++seen[slot] > 1) {
        return core::invalid_argument("stage {} runs {} twice", s, op.to_string());
      }
    }
    for (int mb = 0; mb < m; ++mb) {
      for (PipeOp::Kind kind : {PipeOp::kForward, PipeOp::kBackward}) {
        if (seen[2 * static_cast<size_t>(mb) + (kind == PipeOp::kBackward)] == 0) {
          return core::invalid_argument("stage {} never runs {}", s, PipeOp{kind, mb}.to_string());
        }
      }
    }
  }
  return core::Status::ok();
}

}  // namespace

core::StatusOr<std::vector<std::vector<int>>> schedule_ticks(const PipeSchedule& schedule, int pp,
                                                             int num_micro_batches) {
  const int m = num_micro_batches;
  HYD_RETURN_IF_ERROR(check_ops(schedule, pp, m));
  // done_f[s][mb] / done_b[s][mb]: the round the op ran in, or −1.
  std::vector<std::vector<int>> done_f(pp, std::vector<int>(m, -1));
  std::vector<std::vector<int>> done_b(pp, std::vector<int>(m, -1));
  std::vector<std::vector<int>> ticks(pp);
  std::vector<size_t> next(pp, 0);
  // A dependency is met when it ran in an earlier round than `round`.
  auto before = [](int ran, int round) { return ran >= 0 && ran < round; };
  size_t remaining = 0;
  for (const auto& ops : schedule) remaining += ops.size();
  for (int round = 0; remaining > 0; ++round) {
    bool progress = false;
    for (int s = 0; s < pp; ++s) {
      const auto& ops = schedule[static_cast<size_t>(s)];
      if (next[s] == ops.size()) continue;
      const PipeOp& op = ops[next[s]];
      const int mb = op.micro_batch;
      bool ready;
      if (op.kind == PipeOp::kForward) {
        ready = s == 0 || before(done_f[s - 1][mb], round);
      } else {
        ready = before(done_f[s][mb], round) && (s == pp - 1 || before(done_b[s + 1][mb], round));
      }
      if (!ready) continue;
      (op.kind == PipeOp::kForward ? done_f : done_b)[s][mb] = round;
      ticks[s].push_back(round);
      ++next[s];
      --remaining;
      progress = true;
    }
    // Round t sees everything finished before t; if nothing runs in t, round t + 1 sees the same
    // state, so nothing ever runs again: a dependency cycle (or an op whose input never comes).
    if (!progress) {
      std::string blocked;
      for (int s = 0; s < pp; ++s) {
        const auto& ops = schedule[static_cast<size_t>(s)];
        if (next[s] == ops.size()) continue;
        blocked += fmt::format("{}stage {} waits at {} (op {})", blocked.empty() ? "" : "; ", s,
                               ops[next[s]].to_string(), next[s]);
      }
      return core::invalid_argument("schedule deadlocks after {} rounds: {}", round, blocked);
    }
  }
  return ticks;
}

core::Status validate_schedule(const PipeSchedule& schedule, int pp, int num_micro_batches) {
  auto ticks = schedule_ticks(schedule, pp, num_micro_batches);
  return ticks.is_ok() ? core::Status::ok() : ticks.status();
}

std::vector<int> peak_in_flight(const PipeSchedule& schedule) {
  std::vector<int> peaks;
  for (const auto& ops : schedule) {
    int live = 0, peak = 0;
    for (const PipeOp& op : ops) {
      live += op.kind == PipeOp::kForward ? 1 : -1;
      peak = std::max(peak, live);
    }
    peaks.push_back(peak);
  }
  return peaks;
}

std::string format_schedule(const PipeSchedule& schedule) {
  std::string out;
  for (size_t s = 0; s < schedule.size(); ++s) {
    out += fmt::format("stage {}:", s);
    for (const PipeOp& op : schedule[s]) {
      out += ' ';
      out += op.to_string();
    }
    out += "\n";
  }
  return out;
}

}  // namespace hydraulis::parallel
