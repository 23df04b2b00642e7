// Packers of stage 2 (see pack.h): greedy (methods 1/3), ours (LPT + local search per v) and the
// original's per-v CBC MILP.
#include "planner/pack.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/check.h"
#include "planner/milp.h"

namespace hydraulis::planner {
namespace {

constexpr double kEps = 1e-9;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

PipelineLoad load_of(const PipelineModel& model, std::span<const int64_t> lengths) {
  PipelineLoad load;
  for (int64_t s : lengths) {
    double w = model.sequence_ms(s);
    load.work += w;
    load.tokens += s;
    load.max_cost = std::max(load.max_cost, w);
    ++load.count;
  }
  return load;
}

// (max(work/v, max_cost) + c)·(pp − 1 + v): the per-v lower bound.
double bound_at(const PipelineModel& model, const PipelineLoad& load, int64_t v) {
  double per = std::max(load.work / static_cast<double>(v), load.max_cost);
  return (per + model.cost.c) * static_cast<double>(model.pp() - 1 + v);
}

// Bins of one fixed-v packing attempt.
struct Bins {
  std::vector<double> cost;
  std::vector<int64_t> tokens;
  std::vector<int> bin_of;  // per sequence
};

// Places items (indices, longest first) one by one; `pick` chooses a bin or -1.
template <typename Pick>
bool place_all(std::span<const int> order, std::span<const int64_t> lengths,
               std::span<const double> costs, Bins& bins, Pick pick) {
  for (int i : order) {
    int b = pick(i);
    if (b < 0) return false;
    bins.bin_of[i] = b;
    bins.cost[b] += costs[i];
    bins.tokens[b] += lengths[i];
  }
  return true;
}

// Moves and swaps out of the costliest bin while they lower it and keep the token caps; each
// accepted step lowers the costliest bin and leaves the partner below its old cost, so the sorted
// cost vector decreases lexicographically and the loop ends.
void improve(std::span<const int64_t> lengths, std::span<const double> costs, int64_t cap,
             double floor_cost, Bins& bins) {
  const int v = static_cast<int>(bins.cost.size());
  const int n = static_cast<int>(lengths.size());
  std::vector<std::vector<int>> members(v);
  for (int i = 0; i < n; ++i) members[bins.bin_of[i]].push_back(i);
  for (int iter = 0; iter < 8 * n + 16; ++iter) {
    int top = static_cast<int>(std::max_element(bins.cost.begin(), bins.cost.end()) -
                               bins.cost.begin());
    double top_cost = bins.cost[top];
    if (top_cost <= floor_cost * (1 + kEps)) return;
    double best_pair = top_cost * (1 - kEps);
    int best_i = -1, best_b = -1, best_k = -1;
    for (int i : members[top]) {
      for (int b = 0; b < v; ++b) {
        if (b == top || bins.tokens[b] + lengths[i] > cap) continue;
        double pair = std::max(top_cost - costs[i], bins.cost[b] + costs[i]);
        if (pair < best_pair) {
          best_pair = pair;
          best_i = i;
          best_b = b;
          best_k = -1;
        }
      }
    }
    if (best_i < 0) {
      for (int i : members[top]) {
        for (int b = 0; b < v; ++b) {
          if (b == top) continue;
          for (int k : members[b]) {
            if (costs[k] >= costs[i]) continue;
            if (bins.tokens[b] - lengths[k] + lengths[i] > cap) continue;
            if (bins.tokens[top] - lengths[i] + lengths[k] > cap) continue;
            double pair = std::max(top_cost - costs[i] + costs[k], bins.cost[b] - costs[k] + costs[i]);
            if (pair < best_pair) {
              best_pair = pair;
              best_i = i;
              best_b = b;
              best_k = k;
            }
          }
        }
      }
    }
    if (best_i < 0) return;
    auto move = [&](int item, int from, int to) {
      bins.cost[from] -= costs[item];
      bins.tokens[from] -= lengths[item];
      bins.cost[to] += costs[item];
      bins.tokens[to] += lengths[item];
      bins.bin_of[item] = to;
      auto& src = members[from];
      src.erase(std::find(src.begin(), src.end(), item));
      members[to].push_back(item);
    };
    move(best_i, top, best_b);
    if (best_k >= 0) move(best_k, best_b, top);
  }
}

// One packing attempt into exactly v bins (some may stay empty); false if the token caps defeat
// both greedy placements.
bool pack_fixed_v(std::span<const int64_t> lengths, std::span<const double> costs,
                  std::span<const int> order, int64_t cap, int v, double floor_cost, Bins& bins) {
  const int n = static_cast<int>(lengths.size());
  auto reset = [&] {
    bins.cost.assign(v, 0.0);
    bins.tokens.assign(v, 0);
    bins.bin_of.assign(n, -1);
  };
  reset();
  // LPT: the least costly bin that still has room.
  bool placed = place_all(order, lengths, costs, bins, [&](int i) {
    int best = -1;
    for (int b = 0; b < v; ++b) {
      if (bins.tokens[b] + lengths[i] > cap) continue;
      if (best < 0 || bins.cost[b] < bins.cost[best]) best = b;
    }
    return best;
  });
  if (!placed) {
    // Best-fit decreasing by tokens: the fullest bin that still has room.
    reset();
    placed = place_all(order, lengths, costs, bins, [&](int i) {
      int best = -1;
      for (int b = 0; b < v; ++b) {
        if (bins.tokens[b] + lengths[i] > cap) continue;
        if (best < 0 || bins.tokens[b] > bins.tokens[best]) best = b;
      }
      return best;
    });
  }
  if (!placed) return false;
  improve(lengths, costs, cap, floor_cost, bins);
  return true;
}

}  // namespace

MicroBatchRange micro_batch_range(const PipelineModel& model, int64_t total_tokens,
                                  int64_t num_sequences) {
  MicroBatchRange r;
  if (num_sequences <= 0) return r;
  HYD_CHECK(model.max_tokens > 0, "max_tokens = {}", model.max_tokens);
  r.lo = std::max<int64_t>(1, ceil_div(total_tokens, model.max_tokens));
  int64_t by_utilization =
      model.utilization_seqlen > 0 ? total_tokens / model.utilization_seqlen : num_sequences;
  r.hi = std::max(r.lo, std::min(num_sequences, by_utilization));
  return r;
}

MicroBatchRange original_micro_batch_range(const PipelineModel& model, int64_t total_tokens,
                                           int64_t num_sequences) {
  MicroBatchRange r = micro_batch_range(model, total_tokens, num_sequences);
  r.hi = std::min(r.hi, r.lo + 19);
  return r;
}

double pack_lower_bound(const PipelineModel& model, const PipelineLoad& load) {
  if (load.count <= 0) return 0.0;
  MicroBatchRange r = micro_batch_range(model, load.tokens, load.count);
  // Convex in v: continuous minimiser of (work/v + c)(pp−1+v) is sqrt(work·(pp−1)/c); beyond
  // v = work/max_cost the function increases, so the minimiser is the smaller of the two.
  double c = model.cost.c;
  double vstar = (model.pp() > 1 && c > 0)
                     ? std::sqrt(load.work * (model.pp() - 1) / c)
                     : (model.pp() > 1 ? std::numeric_limits<double>::infinity() : 0.0);
  if (load.max_cost > 0) vstar = std::min(vstar, load.work / load.max_cost);
  double best = std::numeric_limits<double>::infinity();
  auto consider = [&](double v) {
    if (!std::isfinite(v)) v = static_cast<double>(r.hi);
    int64_t iv = std::clamp<int64_t>(static_cast<int64_t>(v), r.lo, r.hi);
    best = std::min(best, bound_at(model, load, iv));
  };
  consider(std::floor(vstar));
  consider(std::ceil(vstar));
  consider(static_cast<double>(r.lo));
  return best;
}

PackResult pack_result_from_bins(const PipelineModel& model, std::span<const int64_t> lengths,
                                 std::span<const int> bin_of, int num_bins) {
  std::vector<std::vector<int>> bins(num_bins);
  std::vector<double> cost(num_bins, 0.0);
  for (size_t i = 0; i < lengths.size(); ++i) {
    HYD_CHECK(bin_of[i] >= 0 && bin_of[i] < num_bins, "bin {} of {}", bin_of[i], num_bins);
    bins[bin_of[i]].push_back(static_cast<int>(i));
    cost[bin_of[i]] += model.sequence_ms(lengths[i]);
  }
  std::vector<int> order(num_bins);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return cost[x] > cost[y]; });
  PackResult result;
  for (int b : order) {
    if (bins[b].empty()) continue;
    result.max_cost = std::max(result.max_cost, cost[b]);
    result.micro_batches.push_back(std::move(bins[b]));
  }
  result.time_ms = pipeline_ms(model, result.max_cost,
                               static_cast<int64_t>(result.micro_batches.size()));
  return result;
}

PackResult pack_greedy(const PipelineModel& model, std::span<const int64_t> lengths, int64_t cap) {
  const int n = static_cast<int>(lengths.size());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return lengths[x] < lengths[y]; });
  std::vector<char> used(n, 0);
  std::vector<int> bin_of(n, -1);
  int bins = 0;
  for (int a = 0; a < n; ++a) {
    int first = order[a];
    if (used[first]) continue;
    HYD_CHECK(lengths[first] <= cap, "sequence of {} tokens over the cap {}", lengths[first], cap);
    used[first] = 1;
    bin_of[first] = bins;
    int64_t tokens = lengths[first];
    for (int b = n - 1; b > a; --b) {
      int k = order[b];
      if (used[k] || tokens + lengths[k] > cap) continue;
      used[k] = 1;
      bin_of[k] = bins;
      tokens += lengths[k];
    }
    ++bins;
  }
  return pack_result_from_bins(model, lengths, bin_of, bins);
}

PackResult pack_balanced(const PipelineModel& model, std::span<const int64_t> lengths) {
  const int n = static_cast<int>(lengths.size());
  if (n == 0) return {};
  std::vector<double> costs(n);
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) {
    HYD_CHECK(lengths[i] <= model.max_tokens, "sequence of {} tokens over max_tokens {}",
              lengths[i], model.max_tokens);
    costs[i] = model.sequence_ms(lengths[i]);
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int x, int y) { return lengths[x] > lengths[y]; });
  PipelineLoad load = load_of(model, lengths);
  MicroBatchRange r = micro_batch_range(model, load.tokens, n);
  // v values in increasing lower-bound order.
  std::vector<int64_t> vs;
  for (int64_t v = r.lo; v <= r.hi; ++v) vs.push_back(v);
  std::stable_sort(vs.begin(), vs.end(), [&](int64_t x, int64_t y) {
    return bound_at(model, load, x) < bound_at(model, load, y);
  });
  PackResult best;
  best.time_ms = std::numeric_limits<double>::infinity();
  Bins bins;
  auto try_v = [&](int64_t v) {
    double floor_cost = std::max(load.work / static_cast<double>(v), load.max_cost);
    if (!pack_fixed_v(lengths, costs, order, model.max_tokens, static_cast<int>(v), floor_cost,
                      bins)) {
      return;
    }
    PackResult candidate = pack_result_from_bins(model, lengths, bins.bin_of, static_cast<int>(v));
    if (candidate.time_ms < best.time_ms * (1 - kEps)) best = std::move(candidate);
  };
  for (int64_t v : vs) {
    if (bound_at(model, load, v) >= best.time_ms * (1 - kEps)) break;
    try_v(v);
  }
  // Tight token caps can defeat the greedy placements for every v of the range; more micro-batches
  // always work in the end (v = n holds one sequence each).
  for (int64_t v = r.hi + 1; !std::isfinite(best.time_ms) && v <= n; ++v) try_v(v);
  HYD_CHECK(std::isfinite(best.time_ms), "no packing of {} sequences", n);
  return best;
}

PackResult pack_original_milp(const PipelineModel& model, std::span<const int64_t> lengths,
                              double time_limit_s) {
  const int n = static_cast<int>(lengths.size());
  if (n == 0) return {};
  std::vector<double> costs(n);
  for (int i = 0; i < n; ++i) costs[i] = model.sequence_ms(lengths[i]);
  PipelineLoad load = load_of(model, lengths);
  MicroBatchRange r = original_micro_batch_range(model, load.tokens, n);
  PackResult best;
  best.time_ms = std::numeric_limits<double>::infinity();
  for (int64_t v = r.lo; v <= r.hi; ++v) {
    std::vector<int> bin_of;
    if (v == 1) {
      bin_of.assign(n, 0);  // ⌈T/M⌉ = 1: everything fits in one micro-batch
    } else if (v == n) {
      bin_of.resize(n);
      std::iota(bin_of.begin(), bin_of.end(), 0);
    } else {
      MilpResult milp = solve_pack_milp(lengths, costs, model.max_tokens, static_cast<int>(v),
                                        time_limit_s);
      if (!milp.feasible) continue;
      bin_of = std::move(milp.choice);
    }
    PackResult candidate = pack_result_from_bins(model, lengths, bin_of, static_cast<int>(v));
    if (candidate.time_ms < best.time_ms) best = std::move(candidate);
  }
  if (!std::isfinite(best.time_ms)) {
    best = pack_balanced(model, lengths);
    best.fallback = true;
  }
  return best;
}

}  // namespace hydraulis::planner
