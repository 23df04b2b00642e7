// Slow, obviously correct twins of packing and dispatch for tests: enumerate every set partition
// (packing) and every sequence-to-pipeline map (dispatch) of small instances.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <vector>

#include "planner/assignment.h"
#include "planner/pack.h"

namespace hydraulis::planner::testing {

// Least pipeline time over every partition of `lengths` into micro-batches within the token cap
// whose count v lies in micro_batch_range (the range pack_balanced searches).
inline double exhaustive_pack(const PipelineModel& m, std::span<const int64_t> lengths) {
  const int n = static_cast<int>(lengths.size());
  if (n == 0) return 0.0;
  int64_t total = 0;
  for (int64_t s : lengths) total += s;
  MicroBatchRange r = micro_batch_range(m, total, n);
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> block(n, 0);
  std::vector<int64_t> tokens;
  std::vector<double> cost;
  // Restricted growth strings enumerate set partitions once each.
  std::function<void(int, int)> rec = [&](int i, int blocks) {
    if (i == n) {
      if (blocks < r.lo || blocks > r.hi) return;
      double mx = *std::max_element(cost.begin(), cost.begin() + blocks);
      best = std::min(best, pipeline_ms(m, mx, blocks));
      return;
    }
    for (int b = 0; b <= blocks; ++b) {
      if (b == blocks) {
        tokens.push_back(0);
        cost.push_back(0);
      }
      if (tokens[b] + lengths[i] <= m.max_tokens) {
        tokens[b] += lengths[i];
        cost[b] += m.sequence_ms(lengths[i]);
        rec(i + 1, std::max(blocks, b + 1));
        tokens[b] -= lengths[i];
        cost[b] -= m.sequence_ms(lengths[i]);
      }
      if (b == blocks) {
        tokens.pop_back();
        cost.pop_back();
      }
    }
  };
  rec(0, 0);
  return best;
}

// Least largest pipeline time over every dispatch (each sequence to a pipeline that holds it)
// with exhaustive packing per pipeline; pipelines may stay empty.
inline double exhaustive_dispatch(std::span<const PipelineModel> pipes,
                                  std::span<const int64_t> lengths) {
  const int n = static_cast<int>(lengths.size());
  const int p = static_cast<int>(pipes.size());
  std::map<std::pair<int, uint32_t>, double> memo;
  auto packed = [&](int j, uint32_t mask) {
    auto key = std::make_pair(j, mask);
    auto it = memo.find(key);
    if (it != memo.end()) return it->second;
    std::vector<int64_t> sub;
    for (int i = 0; i < n; ++i) {
      if (mask >> i & 1u) sub.push_back(lengths[i]);
    }
    double t = exhaustive_pack(pipes[j], sub);
    memo[key] = t;
    return t;
  };
  double best = std::numeric_limits<double>::infinity();
  std::vector<uint32_t> masks(p, 0);
  std::function<void(int)> rec = [&](int i) {
    if (i == n) {
      double worst = 0;
      for (int j = 0; j < p; ++j) worst = std::max(worst, packed(j, masks[j]));
      best = std::min(best, worst);
      return;
    }
    for (int j = 0; j < p; ++j) {
      if (lengths[i] > pipes[j].max_tokens) continue;
      masks[j] |= 1u << i;
      rec(i + 1);
      masks[j] &= ~(1u << i);
    }
  };
  rec(0);
  return best;
}

// A pipeline model with the given coefficients.
inline PipelineModel make_pipeline(int tp, int pp, double a, double b, double c, int64_t max_tokens,
                                   int64_t utilization = 0) {
  PipelineModel m;
  m.cost.scheme = Scheme{1, tp, pp};
  m.cost.a = a;
  m.cost.b = b;
  m.cost.c = c;
  m.max_tokens = max_tokens;
  m.utilization_seqlen = utilization;
  return m;
}

}  // namespace hydraulis::planner::testing
