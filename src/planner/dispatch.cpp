// Dispatchers of stage 1 and the strategy lower bound (see dispatch.h).
#include "planner/dispatch.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kEps = 1e-9;

bool same_model(const PipelineModel& x, const PipelineModel& y) {
  return x.cost.scheme == y.cost.scheme && x.cost.a == y.cost.a && x.cost.b == y.cost.b &&
         x.cost.c == y.cost.c && x.max_tokens == y.max_tokens &&
         x.utilization_seqlen == y.utilization_seqlen;
}

// Pipelines with identical models, so that a search can look at one member per group.
std::vector<std::vector<int>> group_pipelines(std::span<const PipelineModel> pipelines) {
  std::vector<std::vector<int>> groups;
  for (int j = 0; j < static_cast<int>(pipelines.size()); ++j) {
    bool placed = false;
    for (auto& g : groups) {
      if (same_model(pipelines[g.front()], pipelines[j])) {
        g.push_back(j);
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back({j});
  }
  return groups;
}

// Deterministic Fisher–Yates (std::shuffle's algorithm is implementation-defined).
void seeded_shuffle(std::vector<int>& v, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = v.size(); i > 1; --i) {
    size_t k = static_cast<size_t>(rng() % i);
    std::swap(v[i - 1], v[k]);
  }
}

// One pipeline's sequences (sorted longest first) and aggregates, kept in step.
struct Bucket {
  std::vector<int> ids;  // indices into the sorted lengths, longest first
  PipelineLoad load;
};

PipelineLoad load_with(const PipelineModel& m, PipelineLoad load, int64_t s) {
  double w = m.sequence_ms(s);
  load.work += w;
  load.tokens += s;
  load.max_cost = std::max(load.max_cost, w);
  ++load.count;
  return load;
}

// Load of a bucket without sequence `id` (and with `add` when add >= 0).
PipelineLoad load_swapped(const PipelineModel& m, const Bucket& b,
                          std::span<const int64_t> lengths, int id, int add) {
  PipelineLoad load = b.load;
  double w = m.sequence_ms(lengths[id]);
  load.work -= w;
  load.tokens -= lengths[id];
  --load.count;
  if (b.ids.front() == id) {
    load.max_cost = b.ids.size() > 1 ? m.sequence_ms(lengths[b.ids[1]]) : 0.0;
  }
  if (load.count == 0) load = PipelineLoad{};
  if (add >= 0) load = load_with(m, load, lengths[add]);
  return load;
}

void bucket_insert(Bucket& b, const PipelineModel& m, std::span<const int64_t> lengths, int id) {
  auto pos = std::find_if(b.ids.begin(), b.ids.end(),
                          [&](int x) { return lengths[x] < lengths[id]; });
  b.ids.insert(pos, id);
  b.load = load_with(m, b.load, lengths[id]);
}

void bucket_erase(Bucket& b, const PipelineModel& m, std::span<const int64_t> lengths, int id) {
  b.load = load_swapped(m, b, lengths, id, -1);
  b.ids.erase(std::find(b.ids.begin(), b.ids.end(), id));
}

// Work a pipeline can finish within time tau: max over integer v ≥ 1 of v·(tau/(pp−1+v) − c).
double work_capacity(const PipelineModel& m, double tau) {
  double c = m.cost.c;
  int pp = m.pp();
  auto at = [&](double v) { return v * (tau / (pp - 1 + v) - c); };
  if (pp == 1) return tau - c;
  if (c <= 0) return tau;  // v → ∞
  double vstar = std::sqrt(tau * (pp - 1) / c) - (pp - 1);
  double best = at(1.0);
  if (vstar > 1) best = std::max({best, at(std::floor(vstar)), at(std::ceil(vstar))});
  return best;
}

}  // namespace

double original_stage1_total(const PipelineModel& model, const PipelineLoad& load) {
  return load.work + (model.pp() - 1) * load.max_cost;
}

DispatchResult dispatch_original(std::span<const int64_t> sorted_lengths,
                                 std::span<const PipelineModel> pipelines, int num_shuffles,
                                 uint64_t first_seed, EmptyPipelines empty) {
  const int n = static_cast<int>(sorted_lengths.size());
  const int p = static_cast<int>(pipelines.size());
  HYD_CHECK(p > 0, "no pipelines");
  std::vector<int> by_cap(p);
  std::iota(by_cap.begin(), by_cap.end(), 0);
  std::stable_sort(by_cap.begin(), by_cap.end(), [&](int x, int y) {
    return pipelines[x].max_tokens > pipelines[y].max_tokens;
  });
  int64_t second_cap = p > 1 ? pipelines[by_cap[1]].max_tokens : -1;
  std::vector<int> forced, rest;
  for (int i = 0; i < n; ++i) {
    HYD_CHECK(sorted_lengths[i] <= pipelines[by_cap[0]].max_tokens,
              "sequence of {} tokens fits no pipeline", sorted_lengths[i]);
    (sorted_lengths[i] > second_cap ? forced : rest).push_back(i);
  }
  DispatchResult best;
  best.objective = kInf;
  DispatchResult best_rejected;
  best_rejected.objective = kInf;
  std::vector<PipelineLoad> loads(p);
  std::vector<double> totals(p);
  PipelineAssignment assign(p);
  for (int seed = 0; seed < std::max(1, num_shuffles); ++seed) {
    std::fill(loads.begin(), loads.end(), PipelineLoad{});
    for (auto& a : assign) a.clear();
    for (int i : forced) {
      int j = by_cap[0];
      loads[j] = load_with(pipelines[j], loads[j], sorted_lengths[i]);
      assign[j].push_back(i);
    }
    for (int j = 0; j < p; ++j) totals[j] = original_stage1_total(pipelines[j], loads[j]);
    std::vector<int> order = rest;
    seeded_shuffle(order, first_seed + static_cast<uint64_t>(seed));
    for (int i : order) {
      int64_t s = sorted_lengths[i];
      // The two largest totals give "largest of the others" in O(1).
      int arg1 = 0;
      double max1 = -1, max2 = -1;
      for (int j = 0; j < p; ++j) {
        if (totals[j] > max1) {
          max2 = max1;
          max1 = totals[j];
          arg1 = j;
        } else if (totals[j] > max2) {
          max2 = totals[j];
        }
      }
      int chosen = -1;
      std::tuple<double, int, double, int> chosen_key;
      for (int j = 0; j < p; ++j) {
        if (s > pipelines[j].max_tokens) continue;
        double own = original_stage1_total(pipelines[j], load_with(pipelines[j], loads[j], s));
        double others = j == arg1 ? max2 : max1;
        std::tuple<double, int, double, int> key{std::max(others, own), loads[j].count > 0 ? 1 : 0,
                                                 own, j};
        if (chosen < 0 || key < chosen_key) {
          chosen = j;
          chosen_key = key;
        }
      }
      loads[chosen] = load_with(pipelines[chosen], loads[chosen], s);
      totals[chosen] = std::get<2>(chosen_key);
      assign[chosen].push_back(i);
    }
    double objective = *std::max_element(totals.begin(), totals.end());
    bool has_empty = std::any_of(loads.begin(), loads.end(),
                                 [](const PipelineLoad& l) { return l.count == 0; });
    if (has_empty && empty == EmptyPipelines::kReject) {
      if (objective < best_rejected.objective) best_rejected = {assign, objective};
      continue;
    }
    if (objective < best.objective) best = {assign, objective};
  }
  if (!std::isfinite(best.objective)) {
    best.pipelines = std::move(best_rejected.pipelines);
    best.objective = kInf;
  }
  for (auto& ids : best.pipelines) std::sort(ids.begin(), ids.end());
  return best;
}

DispatchResult dispatch_balanced(std::span<const int64_t> sorted_lengths,
                                 std::span<const PipelineModel> pipelines,
                                 const BalancedDispatchOptions& options, double lower_bound_ms,
                                 std::vector<PackResult>* packs) {
  const int n = static_cast<int>(sorted_lengths.size());
  const int p = static_cast<int>(pipelines.size());
  HYD_CHECK(p > 0, "no pipelines");
  const auto groups = group_pipelines(pipelines);
  std::vector<Bucket> buckets(p);
  std::vector<double> est(p, 0.0);
  auto estimate = [&](int j, const PipelineLoad& load) {
    return pack_lower_bound(pipelines[j], load);
  };
  // Member of group g with the least value (skipping `skip`), -1 if none.
  auto least_in_group = [&](const std::vector<int>& g, const std::vector<double>& value,
                            int skip) {
    int best = -1;
    for (int j : g) {
      if (j != skip && (best < 0 || value[j] < value[best])) best = j;
    }
    return best;
  };

  // Greedy, longest first: the pipeline whose estimate grows to the smallest value.
  for (int i = n - 1; i >= 0; --i) {
    int64_t s = sorted_lengths[i];
    int chosen = -1;
    double chosen_value = kInf;
    for (const auto& g : groups) {
      if (s > pipelines[g.front()].max_tokens) continue;
      int j = least_in_group(g, est, -1);
      double value = estimate(j, load_with(pipelines[j], buckets[j].load, s));
      if (chosen < 0 || value < chosen_value - kEps * std::max(1.0, chosen_value)) {
        chosen = j;
        chosen_value = value;
      }
    }
    HYD_CHECK(chosen >= 0, "sequence of {} tokens fits no pipeline", s);
    bucket_insert(buckets[chosen], pipelines[chosen], sorted_lengths, i);
    est[chosen] = chosen_value;
  }

  // Local search on the estimates: moves, then swaps, out of the bottleneck pipeline.
  for (int iter = 0; iter < 4 * n + 8; ++iter) {
    int top = static_cast<int>(std::max_element(est.begin(), est.end()) - est.begin());
    double top_value = est[top];
    if (top_value <= lower_bound_ms * (1 + kEps)) break;
    double best_pair = top_value * (1 - kEps);
    int move_id = -1, move_to = -1, swap_id = -1;
    for (int id : buckets[top].ids) {
      int64_t s = sorted_lengths[id];
      double rest = estimate(top, load_swapped(pipelines[top], buckets[top], sorted_lengths, id, -1));
      if (rest >= best_pair) continue;
      for (const auto& g : groups) {
        if (s > pipelines[g.front()].max_tokens) continue;
        int j = least_in_group(g, est, top);
        if (j < 0) continue;
        double pair = std::max(rest, estimate(j, load_with(pipelines[j], buckets[j].load, s)));
        if (pair < best_pair) {
          best_pair = pair;
          move_id = id;
          move_to = j;
        }
      }
    }
    if (move_id < 0) {
      // Swaps with the few least loaded members of every group.
      for (const auto& g : groups) {
        std::vector<int> members;
        for (int j : g) {
          if (j != top) members.push_back(j);
        }
        size_t keep = std::min<size_t>(4, members.size());
        std::partial_sort(members.begin(), members.begin() + keep, members.end(),
                          [&](int x, int y) { return est[x] < est[y]; });
        members.resize(keep);
        for (int j : members) {
          for (int id : buckets[top].ids) {
            if (sorted_lengths[id] > pipelines[j].max_tokens) continue;
            for (int other : buckets[j].ids) {
              if (sorted_lengths[other] >= sorted_lengths[id]) continue;
              double a = estimate(top, load_swapped(pipelines[top], buckets[top], sorted_lengths,
                                                    id, other));
              if (a >= best_pair) continue;
              double b = estimate(j, load_swapped(pipelines[j], buckets[j], sorted_lengths, other,
                                                  id));
              double pair = std::max(a, b);
              if (pair < best_pair) {
                best_pair = pair;
                move_id = id;
                move_to = j;
                swap_id = other;
              }
            }
          }
        }
      }
    }
    if (move_id < 0) break;
    bucket_erase(buckets[top], pipelines[top], sorted_lengths, move_id);
    bucket_insert(buckets[move_to], pipelines[move_to], sorted_lengths, move_id);
    if (swap_id >= 0) {
      bucket_erase(buckets[move_to], pipelines[move_to], sorted_lengths, swap_id);
      bucket_insert(buckets[top], pipelines[top], sorted_lengths, swap_id);
    }
    est[top] = estimate(top, buckets[top].load);
    est[move_to] = estimate(move_to, buckets[move_to].load);
  }

  // Pack every pipeline, then move sequences out of the packed bottleneck while that helps.
  auto pack_bucket = [&](int j, const std::vector<int>& ids) {
    std::vector<int64_t> lens(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) lens[k] = sorted_lengths[ids[k]];
    return pack_balanced(pipelines[j], lens);
  };
  std::vector<PackResult> packed(p);
  std::vector<double> actual(p);
  for (int j = 0; j < p; ++j) {
    packed[j] = pack_bucket(j, buckets[j].ids);
    actual[j] = packed[j].time_ms;
  }
  for (int round = 0; round < options.max_refine_rounds; ++round) {
    int top = static_cast<int>(std::max_element(actual.begin(), actual.end()) - actual.begin());
    double top_value = actual[top];
    if (top_value <= lower_bound_ms * (1 + kEps)) break;
    struct Candidate {
      double score;
      int id;
      int to;
    };
    std::vector<Candidate> candidates;
    for (int id : buckets[top].ids) {
      int64_t s = sorted_lengths[id];
      double rest = estimate(top, load_swapped(pipelines[top], buckets[top], sorted_lengths, id, -1));
      if (rest >= top_value) continue;
      for (const auto& g : groups) {
        if (s > pipelines[g.front()].max_tokens) continue;
        int j = least_in_group(g, actual, top);
        if (j < 0) continue;
        double score = std::max(rest, estimate(j, load_with(pipelines[j], buckets[j].load, s)));
        if (score < top_value * (1 - kEps)) candidates.push_back({score, id, j});
      }
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const Candidate& x, const Candidate& y) { return x.score < y.score; });
    if (static_cast<int>(candidates.size()) > options.refine_candidates) {
      candidates.resize(options.refine_candidates);
    }
    bool improved = false;
    for (const Candidate& cand : candidates) {
      std::vector<int> from_ids = buckets[top].ids;
      from_ids.erase(std::find(from_ids.begin(), from_ids.end(), cand.id));
      std::vector<int> to_ids = buckets[cand.to].ids;
      to_ids.push_back(cand.id);
      PackResult from_pack = pack_bucket(top, from_ids);
      if (from_pack.time_ms >= top_value * (1 - kEps)) continue;
      PackResult to_pack = pack_bucket(cand.to, to_ids);
      if (to_pack.time_ms >= top_value * (1 - kEps)) continue;
      bucket_erase(buckets[top], pipelines[top], sorted_lengths, cand.id);
      bucket_insert(buckets[cand.to], pipelines[cand.to], sorted_lengths, cand.id);
      // The packs index the bucket lists; repack in the buckets' (sorted) order.
      packed[top] = pack_bucket(top, buckets[top].ids);
      packed[cand.to] = pack_bucket(cand.to, buckets[cand.to].ids);
      actual[top] = packed[top].time_ms;
      actual[cand.to] = packed[cand.to].time_ms;
      est[top] = estimate(top, buckets[top].load);
      est[cand.to] = estimate(cand.to, buckets[cand.to].load);
      improved = true;
      break;
    }
    if (!improved) break;
  }

  DispatchResult result;
  result.pipelines.resize(p);
  for (int j = 0; j < p; ++j) result.pipelines[j] = buckets[j].ids;
  result.objective = *std::max_element(actual.begin(), actual.end());
  if (packs) *packs = std::move(packed);
  return result;
}

double dispatch_lower_bound(std::span<const int64_t> sorted_lengths,
                            std::span<const PipelineModel> pipelines) {
  const int n = static_cast<int>(sorted_lengths.size());
  if (n == 0) return 0.0;
  const auto groups = group_pipelines(pipelines);
  const int num_groups = static_cast<int>(groups.size());
  // Longest-sequence bound: every sequence runs in one micro-batch of some pipeline that holds it,
  // which then takes at least (cost(s) + c)·pp.
  double bound = 0;
  for (int i = n - 1; i >= 0; --i) {
    double best = kInf;
    for (const auto& g : groups) {
      const PipelineModel& m = pipelines[g.front()];
      if (sorted_lengths[i] > m.max_tokens) continue;
      best = std::min(best, (m.sequence_ms(sorted_lengths[i]) + m.cost.c) * m.pp());
    }
    if (!std::isfinite(best)) return kInf;
    bound = std::max(bound, best);
    if (i < n - 1 && sorted_lengths[i] < sorted_lengths[n - 1] / 2) break;  // shorter ones lose
  }
  // Capacity bound. Distinct caps m_1 > … > m_K; sequences longer than m_{k+1} can only use
  // groups with cap ≥ m_k, and for any weights θ ≥ 0: Σ_i min_g θ_g·cost_g(s_i)/cap_g(τ) ≤
  // Σ_g count_g·θ_g over those groups is necessary for a plan of time τ.
  std::vector<int64_t> caps;
  for (const auto& g : groups) caps.push_back(pipelines[g.front()].max_tokens);
  std::sort(caps.begin(), caps.end(), std::greater<>());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  std::vector<std::vector<double>> weightings(2, std::vector<double>(num_groups));
  for (int g = 0; g < num_groups; ++g) {
    weightings[0][g] = 1.0;                                               // per pipeline
    weightings[1][g] = pipelines[groups[g].front()].cost.scheme.gpus();  // per GPU
  }
  // Per-group sequence costs (n × G), computed once.
  std::vector<double> cost(static_cast<size_t>(n) * num_groups);
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < num_groups; ++g) {
      cost[static_cast<size_t>(i) * num_groups + g] =
          pipelines[groups[g].front()].sequence_ms(sorted_lengths[i]);
    }
  }
  // Two resource models of a pipeline within time τ: (1) work Σ w ≤ cap_g(τ); (2) with
  // v ≥ T/M micro-batches, τ ≥ (W/v + c)(pp − 1 + v) ≥ W + c·(pp − 1) + c·T/M, so each sequence
  // uses w(s) + c·s/M of a budget τ − c·(pp − 1) (micro-batch overheads forced by the token cap).
  std::vector<double> token_cost(static_cast<size_t>(n) * num_groups);
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < num_groups; ++g) {
      const PipelineModel& m = pipelines[groups[g].front()];
      token_cost[static_cast<size_t>(i) * num_groups + g] =
          cost[static_cast<size_t>(i) * num_groups + g] +
          m.cost.c * static_cast<double>(sorted_lengths[i]) / static_cast<double>(m.max_tokens);
    }
  }
  std::vector<double> capacity(num_groups);
  auto feasible_in = [&](const std::vector<double>& use,
                         const std::function<double(const PipelineModel&)>& budget_of) {
    for (int g = 0; g < num_groups; ++g) capacity[g] = budget_of(pipelines[groups[g].front()]);
    for (const auto& theta : weightings) {
      for (size_t k = 0; k < caps.size(); ++k) {
        int64_t above = k + 1 < caps.size() ? caps[k + 1] : 0;
        double budget = 0;
        for (int g = 0; g < num_groups; ++g) {
          if (pipelines[groups[g].front()].max_tokens >= caps[k] && capacity[g] > 0) {
            budget += theta[g] * static_cast<double>(groups[g].size());
          }
        }
        double used = 0;
        for (int i = n - 1; i >= 0 && sorted_lengths[i] > above; --i) {
          double best = kInf;
          for (int g = 0; g < num_groups; ++g) {
            const PipelineModel& m = pipelines[groups[g].front()];
            if (m.max_tokens < caps[k] || capacity[g] <= 0) continue;
            best = std::min(best, theta[g] * use[static_cast<size_t>(i) * num_groups + g] /
                                      capacity[g]);
          }
          used += best;
          if (used > budget * (1 + 1e-12)) return false;
        }
      }
    }
    return true;
  };
  auto feasible = [&](double tau) {
    return feasible_in(cost, [&](const PipelineModel& m) { return work_capacity(m, tau); }) &&
           feasible_in(token_cost, [&](const PipelineModel& m) {
             return tau - m.cost.c * static_cast<double>(m.pp() - 1);
           });
  };
  double lo = 0;
  double hi = std::max(bound, 1.0);
  while (!feasible(hi)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1e-5 * hi) {
    double mid = 0.5 * (lo + hi);
    (feasible(mid) ? hi : lo) = mid;
  }
  return std::max(bound, lo);
}

}  // namespace hydraulis::planner
