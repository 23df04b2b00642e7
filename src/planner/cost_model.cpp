// Cost and memory model (spec.md §3-4). The formulas follow the original's
// examples/strategy/cost_model.py (get_strategy_max_seqlen, static_strategy_time_cost) and the
// 128-token alignment of examples/e2e_train.py; ours adds cp (tokens per GPU divided by cp).
// Worked examples: docs/planner.md. Tests: tests/planner/cost_model_test.cpp.
#include "planner/cost_model.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

// Bytes per embedding/LM-head element: 32 when one stage holds both (pp = 1), else 16.
double vocab_bytes_per_element(int pp) {
  return pp == 1 ? 32.0 : 16.0;
}

core::StatusOr<double> activation_per_tp(const SchemeSpace& space, const Scheme& scheme) {
  const auto& table = space.memory().activation_per_tp;
  auto it = table.find(scheme.tp);
  if (it == table.end()) {
    return core::invalid_argument(
        "scheme {}: the scheme space has no memory_regression.A entry \"tp{}\"; add it",
        scheme.to_string(), scheme.tp);
  }
  return it->second;
}

}  // namespace

double micro_batch_cost(const SchemeCost& cost, std::span<const int64_t> lengths) {
  double total = 0;
  for (int64_t s : lengths) total += sequence_cost(cost, s);
  return total;
}

double pipeline_time(const SchemeCost& cost, double max_micro_batch_cost,
                     int64_t num_micro_batches) {
  HYD_CHECK(num_micro_batches >= 0, "num_micro_batches = {}", num_micro_batches);
  if (num_micro_batches == 0) return 0.0;
  return (max_micro_batch_cost + cost.c) *
         static_cast<double>(cost.scheme.pp - 1 + num_micro_batches);
}

double histogram_range_cost(const SchemeCost& cost, std::span<const int64_t> lengths,
                            std::span<const double> counts) {
  HYD_CHECK(lengths.size() == counts.size(), "{} lengths vs {} counts", lengths.size(),
            counts.size());
  double total = 0;
  int64_t longest = 0;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (counts[i] <= 0) continue;
    total += counts[i] * (sequence_cost(cost, lengths[i]) + cost.c);
    longest = std::max(longest, lengths[i]);
  }
  return total + static_cast<double>(cost.scheme.pp - 1) * (sequence_cost(cost, longest) + cost.c);
}

double model_state_bytes(const SchemeSpace& space, const Scheme& scheme,
                         const OptimizerLayout& layout) {
  HYD_CHECK(layout.dp > 0 && layout.tp > 0 && layout.pp > 0, "layout ({}, {}, {})", layout.dp,
            layout.tp, layout.pp);
  HYD_CHECK(scheme.tp > 0 && scheme.pp > 0, "scheme {}", scheme.to_string());
  const MemoryRegression& mem = space.memory();
  const double h = static_cast<double>(space.model().hidden);
  const double l = static_cast<double>(space.model().layers);
  const double v = static_cast<double>(space.model().vocab);
  const double alpha = mem.alpha;
  const double os_share = alpha / layout.dp;  // optimizer-state share, sharded over os_dp
  // Transformer blocks: optimizer states in the optimizer layout, the rest in this scheme's.
  double blocks = (l / layout.pp) * (h * h / layout.tp) * mem.block_bytes * os_share +
                  (l / scheme.pp) * (h * h / scheme.tp) * mem.block_bytes * (1.0 - alpha);
  // Embedding + LM head (H·V elements), same split.
  double vocab = (h * v / layout.tp) * vocab_bytes_per_element(layout.pp) * os_share +
                 (h * v / scheme.tp) * vocab_bytes_per_element(scheme.pp) * (1.0 - alpha);
  return blocks + vocab;
}

double model_state_bytes_homogeneous(const SchemeSpace& space, const Scheme& scheme, int dp) {
  HYD_CHECK(dp > 0, "dp = {}", dp);
  const MemoryRegression& mem = space.memory();
  const double h = static_cast<double>(space.model().hidden);
  const double l = static_cast<double>(space.model().layers);
  const double v = static_cast<double>(space.model().vocab);
  const double share = mem.alpha / dp + 1.0 - mem.alpha;
  return (l / scheme.pp) * (h * h / scheme.tp) * mem.block_bytes * share +
         (h * v / scheme.tp) * vocab_bytes_per_element(scheme.pp) * share;
}

double activation_bytes(const SchemeSpace& space, const Scheme& scheme, int64_t tokens) {
  auto a = activation_per_tp(space, scheme);
  HYD_CHECK(a.is_ok(), "{}", a.status().message());
  const double h = static_cast<double>(space.model().hidden);
  const double l = static_cast<double>(space.model().layers);
  const double tokens_per_gpu = static_cast<double>(tokens) / scheme.cp;
  return l * (tokens_per_gpu * h / scheme.tp) * *a;
}

double memory_gap_bytes(const SchemeSpace& space) {
  auto it = space.memory().gap.find("node");
  return it == space.memory().gap.end() ? 0.0 : it->second;
}

double predicted_memory_bytes(const SchemeSpace& space, const Scheme& scheme,
                              const OptimizerLayout& layout, int64_t tokens) {
  return activation_bytes(space, scheme, tokens) + model_state_bytes(space, scheme, layout) +
         memory_gap_bytes(space);
}

core::StatusOr<int64_t> max_tokens_for_state(const SchemeSpace& space, const Scheme& scheme,
                                             double state_bytes) {
  HYD_ASSIGN_OR_RETURN(double a, activation_per_tp(space, scheme));
  const ClusterConfig& cluster = space.cluster();
  const double gap = memory_gap_bytes(space);
  const double free_bytes =
      cluster.gpu_memory_bound - space.memory().safe_bound - state_bytes - gap;
  if (free_bytes <= 0) {
    return core::make_error(
        core::StatusCode::kResourceExhausted,
        "scheme {} does not fit: model state {:.0f} B + gap {:.0f} B + safe bound {:.0f} B "
        "exceed the GPU memory bound {:.0f} B; use more tp/pp or a larger optimizer dp",
        scheme.to_string(), state_bytes, gap, space.memory().safe_bound, cluster.gpu_memory_bound);
  }
  const double h = static_cast<double>(space.model().hidden);
  const double l = static_cast<double>(space.model().layers);
  const double bytes_per_token = l * (h / scheme.tp) * a;  // per GPU, one token
  // With context parallelism each GPU holds 1/cp of the micro-batch's tokens.
  const double tokens = std::floor(free_bytes * scheme.cp / bytes_per_token);
  if (tokens >= 9.0e18) return int64_t{0x7fffffffffffff80};
  const int64_t aligned = static_cast<int64_t>(tokens) / kTokenAlignment * kTokenAlignment;
  return aligned;
}

core::StatusOr<int64_t> max_tokens(const SchemeSpace& space, const Scheme& scheme,
                                   const OptimizerLayout& layout) {
  return max_tokens_for_state(space, scheme, model_state_bytes(space, scheme, layout));
}

}  // namespace hydraulis::planner
