// Strategy choice and batching methods for one global batch (see batch_planner.h).
#include "planner/batch_planner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"
#include "planner/cost_model.h"
#include "planner/milp.h"
#include "planner/pack.h"

namespace hydraulis::planner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Result of one strategy: per pipeline its sequences (sorted-array indices) and their packing
// (indices into that pipeline's list).
struct StrategyResult {
  PipelineAssignment assignment;
  std::vector<PackResult> packs;
  double estimated_ms = kInf;
  double selection_ms = kInf;  // the value strategies are compared by
};

std::vector<int64_t> lengths_of(std::span<const int64_t> sorted, const std::vector<int>& ids) {
  std::vector<int64_t> out(ids.size());
  for (size_t k = 0; k < ids.size(); ++k) out[k] = sorted[ids[k]];
  return out;
}

double largest_time(const std::vector<PackResult>& packs) {
  double t = 0;
  for (const PackResult& p : packs) t = std::max(t, p.time_ms);
  return t;
}

// Methods 0/1: contiguous chunks of the input order, ⌈n/P⌉ each (what a plain data-parallel
// loader does); returned as sorted-array indices.
PipelineAssignment even_split(std::span<const int> rank_of_input, int num_pipelines) {
  const int n = static_cast<int>(rank_of_input.size());
  PipelineAssignment out(num_pipelines);
  int chunk = (n + num_pipelines - 1) / num_pipelines;
  for (int i = 0; i < n; ++i) out[std::min(i / std::max(chunk, 1), num_pipelines - 1)].push_back(rank_of_input[i]);
  return out;
}

// Each sequence its own micro-batch, costed at the pad length.
PackResult pack_padded(const PipelineModel& model, size_t count, int64_t pad) {
  PackResult r;
  for (size_t k = 0; k < count; ++k) r.micro_batches.push_back({static_cast<int>(k)});
  r.max_cost = count ? model.sequence_ms(pad) : 0.0;
  r.time_ms = pipeline_ms(model, r.max_cost, static_cast<int64_t>(count));
  return r;
}

core::Status check_fits(const StrategyModel& s, const PipelineAssignment& a,
                        std::span<const int64_t> sorted, std::span<const int> input_of,
                        int64_t cap_limit, int64_t batch) {
  for (size_t j = 0; j < a.size(); ++j) {
    int64_t cap = std::min(s.pipelines[j].max_tokens, cap_limit);
    for (int id : a[j]) {
      if (sorted[id] > cap) {
        return core::invalid_argument(
            "batch {}: sequence {} has {} tokens but pipeline {} of strategy {} holds {}: raise "
            "--max-seq-len or use method 3/4, which dispatch by length",
            batch, input_of[id], sorted[id], j, summarize_strategy(s.strategy), cap);
      }
    }
  }
  return core::Status::ok();
}

StrategyResult plan_strategy(const StrategyModel& s, std::span<const int64_t> sorted,
                             std::span<const int> rank_of_input, const PlannerOptions& options,
                             int64_t pad, double lower_bound) {
  const auto& pipes = s.pipelines;
  const int p = static_cast<int>(pipes.size());
  StrategyResult r;
  auto pack_all = [&](auto&& packer) {
    r.packs.resize(p);
    for (int j = 0; j < p; ++j) r.packs[j] = packer(j, lengths_of(sorted, r.assignment[j]));
    r.estimated_ms = largest_time(r.packs);
    r.selection_ms = r.estimated_ms;
  };
  switch (options.method) {
    case BatchingMethod::kPadding:
      r.assignment = even_split(rank_of_input, p);
      pack_all([&](int j, const std::vector<int64_t>& lens) {
        return pack_padded(pipes[j], lens.size(), pad);
      });
      return r;
    case BatchingMethod::kPacking:
      r.assignment = even_split(rank_of_input, p);
      pack_all([&](int j, const std::vector<int64_t>& lens) {
        return pack_greedy(pipes[j], lens, std::min(pipes[j].max_tokens, pad));
      });
      return r;
    case BatchingMethod::kDispatchPacking:
    case BatchingMethod::kDispatchFinePacking:
      break;
  }
  const bool fine = options.method == BatchingMethod::kDispatchFinePacking;
  double stage1 = kInf;
  if (options.algorithm == PlannerAlgorithm::kOurs) {
    std::vector<PackResult> packs;
    DispatchResult d = dispatch_balanced(sorted, pipes, options.balanced, lower_bound, &packs);
    r.assignment = std::move(d.pipelines);
    if (fine) {
      r.packs = std::move(packs);
      r.estimated_ms = largest_time(r.packs);
      r.selection_ms = r.estimated_ms;
      return r;
    }
  } else {
    EmptyPipelines empty = EmptyPipelines::kReject;
    DispatchResult d = dispatch_original(sorted, pipes, options.num_shuffles, options.seed, empty);
    stage1 = d.objective;
    if (options.algorithm == PlannerAlgorithm::kMilp) {
      // MIP start: one greedy shuffle (empty pipelines allowed: the MILP allows them too).
      DispatchResult start = dispatch_original(sorted, pipes, 1, options.seed, EmptyPipelines::kAllow);
      std::vector<int> choice(sorted.size(), 0);
      for (int j = 0; j < p; ++j) {
        for (int id : start.pipelines[j]) choice[id] = j;
      }
      MilpResult milp = solve_dispatch_milp(sorted, pipes, choice, options.dispatch_time_limit_s);
      if (milp.feasible) choice = milp.choice;
      d.pipelines.assign(p, {});
      for (int i = 0; i < static_cast<int>(sorted.size()); ++i) d.pipelines[choice[i]].push_back(i);
      stage1 = milp.feasible ? milp.objective : start.objective;
    }
    r.assignment = std::move(d.pipelines);
  }
  if (fine) {
    if (options.algorithm == PlannerAlgorithm::kOurs) {
      pack_all([&](int j, const std::vector<int64_t>& lens) { return pack_balanced(pipes[j], lens); });
    } else {
      pack_all([&](int j, const std::vector<int64_t>& lens) {
        return pack_original_milp(pipes[j], lens, options.pack_time_limit_s);
      });
      // The original rejects a dispatch that leaves a pipeline empty.
      if (!std::isfinite(stage1)) r.selection_ms = kInf;
    }
  } else {
    pack_all([&](int j, const std::vector<int64_t>& lens) {
      return pack_greedy(pipes[j], lens, std::min(pipes[j].max_tokens, pad));
    });
    // The original picks method 3's strategy by its stage-1 objective.
    if (options.algorithm != PlannerAlgorithm::kOurs) r.selection_ms = stage1;
  }
  return r;
}

// Ours, method 4: the packed search (dispatch_search.h) from a quick plan of strategy s.
void search_strategy(const StrategyModel& s, std::span<const int64_t> sorted,
                     const PlannerOptions& options, double lower_bound, StrategyResult& r) {
  DispatchSearchOptions search = options.search;
  search.seed = options.seed;
  DispatchResult start{r.assignment, r.estimated_ms};
  std::vector<PackResult> packs;
  DispatchResult d = search_dispatch(sorted, s.pipelines, search, lower_bound, start, r.packs, &packs);
  if (d.objective < r.estimated_ms) {
    r.assignment = std::move(d.pipelines);
    r.packs = std::move(packs);
    r.estimated_ms = largest_time(r.packs);
    r.selection_ms = r.estimated_ms;
  }
}

}  // namespace

core::StatusOr<BatchingMethod> batching_method_from_int(int method) {
  switch (method) {
    case 0: return BatchingMethod::kPadding;
    case 1: return BatchingMethod::kPacking;
    case 3: return BatchingMethod::kDispatchPacking;
    case 4: return BatchingMethod::kDispatchFinePacking;
    default:
      return core::invalid_argument(
          "batching method {} is not supported: use 0 (padding), 1 (packing), 3 (dispatch + "
          "greedy packing) or 4 (dispatch + fine-grained packing)",
          method);
  }
}

core::StatusOr<PlannerAlgorithm> planner_algorithm_from_string(std::string_view name) {
  if (name == "ours") return PlannerAlgorithm::kOurs;
  if (name == "original") return PlannerAlgorithm::kOriginal;
  if (name == "milp") return PlannerAlgorithm::kMilp;
  return core::invalid_argument("unknown planner algorithm '{}': use ours, original or milp",
                                name);
}

const char* planner_algorithm_name(PlannerAlgorithm algorithm) {
  switch (algorithm) {
    case PlannerAlgorithm::kOurs: return "ours";
    case PlannerAlgorithm::kOriginal: return "original";
    case PlannerAlgorithm::kMilp: return "milp";
  }
  return "?";
}

int64_t StrategyModel::largest_max_tokens() const {
  int64_t m = 0;
  for (const PipelineModel& p : pipelines) m = std::max(m, p.max_tokens);
  return m;
}

std::vector<SchemeCost> strategy_costs(const StrategyModel& strategy) {
  std::vector<SchemeCost> costs;
  for (const PipelineModel& p : strategy.pipelines) costs.push_back(p.cost);
  return costs;
}

core::StatusOr<std::vector<StrategyModel>> build_strategy_models(
    const SchemeSpace& space, const std::vector<Strategy>& strategies, int num_gpus) {
  HYD_RETURN_IF_ERROR(validate_strategy_list(strategies, space, num_gpus));
  OptimizerLayout layout = optimizer_layout(strategies);
  std::vector<StrategyModel> models;
  for (const Strategy& strategy : strategies) {
    StrategyModel model;
    model.strategy = strategy;
    for (const Scheme& scheme : strategy) {
      const SchemeCost* cost = space.find(scheme);
      if (!cost) {
        return core::invalid_argument("scheme {} is not in the scheme space", scheme.to_string());
      }
      auto tokens = max_tokens(space, scheme, layout);
      if (!tokens.is_ok()) {
        return tokens.status().with_context(
            fmt::format("strategy {}", summarize_strategy(strategy)));
      }
      model.pipelines.push_back({*cost, *tokens, space.utilization_seqlen(scheme.tp)});
    }
    models.push_back(std::move(model));
  }
  return models;
}

core::StatusOr<BatchPlan> plan_global_batch(std::span<const int64_t> lengths,
                                            std::span<const StrategyModel> strategies,
                                            const PlannerOptions& options, int64_t batch_index) {
  auto started = std::chrono::steady_clock::now();
  const int n = static_cast<int>(lengths.size());
  if (n == 0) return core::invalid_argument("batch {} is empty", batch_index);
  if (strategies.empty()) return core::invalid_argument("no strategies to plan with");
  for (int i = 0; i < n; ++i) {
    if (lengths[i] <= 0) {
      return core::invalid_argument("batch {}: sequence {} has length {}; lengths must be > 0",
                                    batch_index, i, lengths[i]);
    }
  }
  // Sorted ascending (stable); input_of maps sorted position -> input position.
  std::vector<int> input_of(n);
  std::iota(input_of.begin(), input_of.end(), 0);
  std::stable_sort(input_of.begin(), input_of.end(),
                   [&](int x, int y) { return lengths[x] < lengths[y]; });
  std::vector<int> rank_of_input(n);
  std::vector<int64_t> sorted(n);
  for (int k = 0; k < n; ++k) {
    sorted[k] = lengths[input_of[k]];
    rank_of_input[input_of[k]] = k;
  }
  const int64_t longest = sorted.back();
  int64_t pad = options.max_seq_len > 0 ? options.max_seq_len : (longest + 127) / 128 * 128;

  // Candidates.
  std::vector<int> candidates;
  const bool single = options.method == BatchingMethod::kPadding ||
                      options.method == BatchingMethod::kPacking;
  if (single) {
    if (options.fixed_strategy < 0 ||
        options.fixed_strategy >= static_cast<int>(strategies.size())) {
      return core::invalid_argument("strategy index {} outside the list of {}",
                                    options.fixed_strategy, strategies.size());
    }
    candidates.push_back(options.fixed_strategy);
  } else {
    int64_t largest = 0;
    for (int k = 0; k < static_cast<int>(strategies.size()); ++k) {
      largest = std::max(largest, strategies[k].largest_max_tokens());
      if (strategies[k].largest_max_tokens() >= longest) candidates.push_back(k);
    }
    if (candidates.empty()) {
      return core::invalid_argument(
          "batch {}: sequence {} has {} tokens; the largest pipeline of any strategy holds {}: "
          "shorten sequences (--max-seq-len) or add a strategy with a larger scheme (more tp/cp)",
          batch_index, input_of[n - 1], longest, largest);
    }
  }
  if (options.method != BatchingMethod::kDispatchFinePacking && longest > pad) {
    return core::invalid_argument("batch {}: sequence {} has {} tokens > --max-seq-len {}",
                                  batch_index, input_of[n - 1], longest, pad);
  }

  std::vector<double> bounds;
  for (int k : candidates) bounds.push_back(dispatch_lower_bound(sorted, strategies[k].pipelines));
  std::vector<int> order(candidates.size());
  std::iota(order.begin(), order.end(), 0);
  if (options.algorithm == PlannerAlgorithm::kOurs && !single) {
    std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return bounds[x] < bounds[y]; });
  }
  const bool search = options.algorithm == PlannerAlgorithm::kOurs &&
                      options.method == BatchingMethod::kDispatchFinePacking &&
                      options.search.pack_budget > 0;
  int best_k = -1;
  StrategyResult best;
  std::vector<StrategyResult> quick(order.size());  // ours, method 4: the quick plans
  std::vector<char> planned(order.size(), 0);
  for (int o : order) {
    int k = candidates[o];
    // Ours skips strategies whose lower bound cannot beat the best plan found.
    if (options.algorithm == PlannerAlgorithm::kOurs && best_k >= 0 &&
        bounds[o] >= best.estimated_ms) {
      continue;
    }
    if (single) {
      HYD_RETURN_IF_ERROR(check_fits(strategies[k],
                                     even_split(rank_of_input, static_cast<int>(strategies[k].pipelines.size())),
                                     sorted, input_of, pad, batch_index));
    }
    StrategyResult r = plan_strategy(strategies[k], sorted, rank_of_input, options, pad, bounds[o]);
    if (search) {
      quick[o] = r;
      planned[o] = 1;
    }
    bool better = best_k < 0 || r.selection_ms < best.selection_ms ||
                  (r.selection_ms == best.selection_ms && r.estimated_ms < best.estimated_ms);
    if (better) {
      best_k = k;
      best = std::move(r);
    }
  }
  HYD_CHECK(best_k >= 0, "no strategy planned");
  if (search) {
    // Search the promising strategies, best quick plan first, while their bound can still win.
    std::vector<int> by_quick;
    for (int o : order) {
      if (planned[o]) by_quick.push_back(o);
    }
    std::stable_sort(by_quick.begin(), by_quick.end(), [&](int x, int y) {
      return quick[x].estimated_ms < quick[y].estimated_ms;
    });
    const double window = quick[by_quick.front()].estimated_ms * (1 + options.search.strategy_window);
    for (int o : by_quick) {
      if (quick[o].estimated_ms > window || bounds[o] >= best.estimated_ms) continue;
      search_strategy(strategies[candidates[o]], sorted, options, bounds[o], quick[o]);
      if (quick[o].estimated_ms < best.estimated_ms) {
        best_k = candidates[o];
        best = std::move(quick[o]);
      }
    }
  }

  BatchPlan plan;
  plan.batch = batch_index;
  plan.strategy = best_k;
  plan.method = static_cast<int>(options.method);
  plan.pad_tokens = options.method == BatchingMethod::kPadding ? pad : 0;
  plan.lower_bound_ms = *std::min_element(bounds.begin(), bounds.end());
  const StrategyModel& chosen = strategies[best_k];
  for (size_t j = 0; j < chosen.pipelines.size(); ++j) {
    PipelinePlan pp;
    pp.scheme = chosen.pipelines[j].cost.scheme;
    pp.max_tokens = chosen.pipelines[j].max_tokens;
    pp.estimated_ms = best.packs[j].time_ms;
    for (const auto& mb : best.packs[j].micro_batches) {
      std::vector<int> ids;
      for (int local : mb) ids.push_back(input_of[best.assignment[j][local]]);
      pp.micro_batches.push_back(std::move(ids));
    }
    plan.estimated_ms = std::max(plan.estimated_ms, pp.estimated_ms);
    plan.pipelines.push_back(std::move(pp));
  }
  plan.planning_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return plan;
}

}  // namespace hydraulis::planner
