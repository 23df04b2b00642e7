// Iterated local search of a dispatch on the packed objective (see dispatch_search.h).
#include "planner/dispatch_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <unordered_map>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

constexpr double kEps = 1e-9;
// Beyond this many pipelines, swaps look at a few least-loaded members of each model group.
constexpr int kAllPartnersUpTo = 32;
constexpr int kPartnersPerGroup = 8;

// A dispatch with each pipeline's packing; ids are kept ascending (packs index into them).
struct State {
  PipelineAssignment ids;
  std::vector<PackResult> packs;
  double objective() const {
    double t = 0;
    for (const PackResult& p : packs) t = std::max(t, p.time_ms);
    return t;
  }
  int bottleneck() const {
    int top = 0;
    for (int j = 1; j < static_cast<int>(packs.size()); ++j) {
      if (packs[j].time_ms > packs[top].time_ms) top = j;
    }
    return top;
  }
};

class Searcher {
 public:
  Searcher(std::span<const int64_t> lengths, std::span<const PipelineModel> pipelines,
           const DispatchSearchOptions& options, double lower_bound)
      : lengths_(lengths), pipes_(pipelines), options_(options), lower_bound_(lower_bound),
        rng_(options.seed) {
    const int p = static_cast<int>(pipes_.size());
    for (int j = 0; j < p; ++j) {
      int g = 0;
      for (; g < static_cast<int>(groups_.size()); ++g) {
        const PipelineModel& x = pipes_[groups_[g].front()];
        if (x.cost.scheme == pipes_[j].cost.scheme && x.cost.a == pipes_[j].cost.a &&
            x.cost.b == pipes_[j].cost.b && x.cost.c == pipes_[j].cost.c &&
            x.max_tokens == pipes_[j].max_tokens &&
            x.utilization_seqlen == pipes_[j].utilization_seqlen) {
          break;
        }
      }
      if (g == static_cast<int>(groups_.size())) groups_.emplace_back();
      groups_[g].push_back(j);
      group_of_.push_back(g);
    }
  }

  bool exhausted() const { return used_ >= options_.pack_budget; }
  bool at_bound(double objective) const {
    return objective <= lower_bound_ * (1 + options_.stop_gap);
  }

  // pack_balanced of ids (ascending) on pipeline j, memoized per model group: the search revisits
  // many lists. Only packings actually run count against the budget.
  PackResult pack(int j, const std::vector<int>& ids) {
    std::vector<int> key = ids;
    key.push_back(group_of_[j]);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    ++used_;
    std::vector<int64_t> lens(ids.size());
    for (size_t k = 0; k < ids.size(); ++k) lens[k] = lengths_[ids[k]];
    PackResult result = pack_balanced(pipes_[j], lens);
    cache_.emplace(std::move(key), result);
    return result;
  }

  // Packs every pipeline of a dispatch.
  State make_state(PipelineAssignment ids) {
    State s;
    s.ids = std::move(ids);
    for (auto& list : s.ids) std::sort(list.begin(), list.end());
    for (int j = 0; j < static_cast<int>(s.ids.size()); ++j) s.packs.push_back(pack(j, s.ids[j]));
    return s;
  }

  // Descends until no checked move or swap out of the bottleneck lowers it.
  void descend(State& s) {
    while (!exhausted() && !at_bound(s.objective()) && step(s)) {
    }
  }

  // A random restart: a randomized greedy on the packing bounds (even r) or one shuffle of the
  // original's stage-1 greedy (odd r).
  PipelineAssignment restart(int r) {
    if (r % 2 == 1) {
      return dispatch_original(lengths_, pipes_, 1, options_.seed * 7919 + static_cast<uint64_t>(r),
                               EmptyPipelines::kAllow)
          .pipelines;
    }
    const int n = static_cast<int>(lengths_.size());
    std::uniform_real_distribution<double> noise(0.7, 1.3);
    std::vector<std::pair<double, int>> order(n);
    for (int i = 0; i < n; ++i) {
      order[i] = {static_cast<double>(lengths_[i]) * noise(rng_), i};
    }
    std::sort(order.begin(), order.end(), std::greater<>());
    const int p = static_cast<int>(pipes_.size());
    std::vector<PipelineLoad> loads(p);
    PipelineAssignment ids(p);
    std::uniform_real_distribution<double> tie(1.0, 1.02);
    for (const auto& [key, i] : order) {
      int chosen = -1;
      double chosen_value = 0;
      for (int j = 0; j < p; ++j) {
        if (lengths_[i] > pipes_[j].max_tokens) continue;
        double value = pack_lower_bound(pipes_[j], with(j, loads[j], i)) * tie(rng_);
        if (chosen < 0 || value < chosen_value) {
          chosen = j;
          chosen_value = value;
        }
      }
      HYD_CHECK(chosen >= 0, "sequence of {} tokens fits no pipeline", lengths_[i]);
      loads[chosen] = with(chosen, loads[chosen], i);
      ids[chosen].push_back(i);
    }
    return ids;
  }

  // Moves 1–3 random sequences of the two costliest pipelines to random pipelines that hold them.
  void kick(State& s) {
    const int p = static_cast<int>(pipes_.size());
    if (p < 2) return;
    std::vector<int> by_time(p);
    for (int j = 0; j < p; ++j) by_time[j] = j;
    std::stable_sort(by_time.begin(), by_time.end(), [&](int x, int y) {
      return s.packs[x].time_ms > s.packs[y].time_ms;
    });
    int moves = 1 + static_cast<int>(rng_() % 3);
    std::vector<char> touched(p, 0);
    for (int m = 0; m < moves; ++m) {
      int from = by_time[rng_() % 2];
      if (s.ids[from].empty()) continue;
      int id = s.ids[from][rng_() % s.ids[from].size()];
      std::vector<int> eligible;
      for (int j = 0; j < p; ++j) {
        if (j != from && lengths_[id] <= pipes_[j].max_tokens) eligible.push_back(j);
      }
      if (eligible.empty()) continue;
      int to = eligible[rng_() % eligible.size()];
      move_id(s.ids, id, from, to);
      touched[from] = touched[to] = 1;
    }
    for (int j = 0; j < p; ++j) {
      if (touched[j]) s.packs[j] = pack(j, s.ids[j]);
    }
  }

 private:
  struct Candidate {
    double score;  // larger of the two packing bounds after the change
    int id;        // leaves the bottleneck
    int to;        // for this pipeline
    int other;     // and, for a swap, this one comes back (-1: a move)
  };

  PipelineLoad with(int j, PipelineLoad load, int id) const {
    double w = pipes_[j].sequence_ms(lengths_[id]);
    load.work += w;
    load.tokens += lengths_[id];
    load.max_cost = std::max(load.max_cost, w);
    ++load.count;
    return load;
  }

  // Load of ids[j] without `out` (when ≥ 0) and with `in` (when ≥ 0).
  PipelineLoad load_of(int j, const std::vector<int>& ids, int out, int in) const {
    PipelineLoad load;
    for (int id : ids) {
      if (id != out) load = with(j, load, id);
    }
    if (in >= 0) load = with(j, load, in);
    return load;
  }

  static void move_id(PipelineAssignment& ids, int id, int from, int to) {
    auto& src = ids[from];
    src.erase(std::find(src.begin(), src.end(), id));
    auto& dst = ids[to];
    dst.insert(std::lower_bound(dst.begin(), dst.end(), id), id);
  }

  std::vector<int> partners(const State& s, int top) const {
    std::vector<int> out;
    const int p = static_cast<int>(pipes_.size());
    if (p <= kAllPartnersUpTo) {
      for (int j = 0; j < p; ++j) {
        if (j != top) out.push_back(j);
      }
      return out;
    }
    for (const auto& g : groups_) {
      std::vector<int> members;
      for (int j : g) {
        if (j != top) members.push_back(j);
      }
      size_t keep = std::min<size_t>(kPartnersPerGroup, members.size());
      std::partial_sort(members.begin(), members.begin() + keep, members.end(), [&](int x, int y) {
        return s.packs[x].time_ms < s.packs[y].time_ms;
      });
      out.insert(out.end(), members.begin(), members.begin() + keep);
    }
    return out;
  }

  // Load of ids[j] (ascending, so the last is the costliest) without `out`, with `in` (each when
  // ≥ 0), in O(1) from the full load.
  PipelineLoad changed(int j, const std::vector<int>& ids, const PipelineLoad& full, int out,
                       int in) const {
    PipelineLoad load = full;
    if (out >= 0) {
      double w = pipes_[j].sequence_ms(lengths_[out]);
      load.work -= w;
      load.tokens -= lengths_[out];
      --load.count;
      if (out == ids.back()) {
        load.max_cost = ids.size() > 1 ? pipes_[j].sequence_ms(lengths_[ids[ids.size() - 2]]) : 0;
      }
      if (load.count == 0) load = PipelineLoad{};
    }
    if (in >= 0) load = with(j, load, in);
    return load;
  }

  // One improving move or swap out of the bottleneck; false at a local optimum. Candidates are
  // ranked by the larger of the two packing bounds; the best few are checked by real packing.
  bool step(State& s) {
    ++used_;  // a step's candidate ranking costs about as much as a packing
    const int top = s.bottleneck();
    const double limit = s.packs[top].time_ms * (1 - kEps);
    std::vector<Candidate> cands;
    const std::vector<int> others = partners(s, top);
    std::vector<PipelineLoad> loads(pipes_.size());
    for (int j : others) loads[j] = load_of(j, s.ids[j], -1, -1);
    const PipelineLoad top_load = load_of(top, s.ids[top], -1, -1);
    for (int id : s.ids[top]) {
      const PipelineLoad rest = changed(top, s.ids[top], top_load, id, -1);
      const double rest_bound = pack_lower_bound(pipes_[top], rest);
      const double w_id = pipes_[top].sequence_ms(lengths_[id]);
      for (int j : others) {
        if (lengths_[id] > pipes_[j].max_tokens) continue;
        double score = std::max(rest_bound, pack_lower_bound(pipes_[j], with(j, loads[j], id)));
        if (score < limit) cands.push_back({score, id, j, -1});
        for (int other : s.ids[j]) {
          if (lengths_[other] >= lengths_[id]) break;  // ascending: the rest are longer
          if (pipes_[top].sequence_ms(lengths_[other]) >= w_id) break;
          double a = pack_lower_bound(pipes_[top], with(top, rest, other));
          if (a >= limit) continue;
          double b = pack_lower_bound(pipes_[j], changed(j, s.ids[j], loads[j], other, id));
          if (std::max(a, b) < limit) cands.push_back({std::max(a, b), id, j, other});
        }
      }
    }
    // The best few by (score, id, to, other): a total order, so the result is deterministic.
    auto less = [](const Candidate& x, const Candidate& y) {
      return std::tie(x.score, x.id, x.to, x.other) < std::tie(y.score, y.id, y.to, y.other);
    };
    size_t keep = std::min(cands.size(), static_cast<size_t>(options_.candidates_per_round));
    std::partial_sort(cands.begin(), cands.begin() + static_cast<std::ptrdiff_t>(keep), cands.end(),
                      less);
    cands.resize(keep);
    int checked = 0;
    for (const Candidate& c : cands) {
      if (checked++ >= options_.candidates_per_round || exhausted()) break;
      PipelineAssignment trial = {s.ids[top], s.ids[c.to]};
      move_id(trial, c.id, 0, 1);
      if (c.other >= 0) move_id(trial, c.other, 1, 0);
      PackResult a = pack(top, trial[0]);
      if (a.time_ms >= limit) continue;
      PackResult b = pack(c.to, trial[1]);
      if (b.time_ms >= limit) continue;
      s.ids[top] = std::move(trial[0]);
      s.ids[c.to] = std::move(trial[1]);
      s.packs[top] = std::move(a);
      s.packs[c.to] = std::move(b);
      return true;
    }
    return false;
  }

  std::span<const int64_t> lengths_;
  std::span<const PipelineModel> pipes_;
  DispatchSearchOptions options_;
  double lower_bound_;
  std::mt19937_64 rng_;
  std::vector<std::vector<int>> groups_;
  std::vector<int> group_of_;
  struct ListHash {
    size_t operator()(const std::vector<int>& v) const {
      uint64_t h = 1469598103934665603ull;  // FNV-1a over the ints
      for (int x : v) h = (h ^ static_cast<uint64_t>(static_cast<uint32_t>(x))) * 1099511628211ull;
      return static_cast<size_t>(h);
    }
  };
  std::unordered_map<std::vector<int>, PackResult, ListHash> cache_;
  int64_t used_ = 0;
};

}  // namespace

DispatchResult search_dispatch(std::span<const int64_t> sorted_lengths,
                               std::span<const PipelineModel> pipelines,
                               const DispatchSearchOptions& options, double lower_bound_ms,
                               const DispatchResult& initial,
                               const std::vector<PackResult>& initial_packs,
                               std::vector<PackResult>* packs) {
  Searcher searcher(sorted_lengths, pipelines, options, lower_bound_ms);
  double initial_objective = 0;
  for (const PackResult& p : initial_packs) initial_objective = std::max(initial_objective, p.time_ms);
  if (options.pack_budget <= 0 || pipelines.size() < 2 || searcher.at_bound(initial_objective)) {
    if (packs) *packs = initial_packs;
    return {initial.pipelines, initial_objective};
  }
  // The search keeps ascending lists; the initial lists (and packs) may be in another order, so
  // it starts from a re-packed copy and the initial plan is returned unless beaten.
  State best = searcher.make_state(initial.pipelines);
  searcher.descend(best);
  for (int r = 0; r < options.num_restarts && !searcher.exhausted() &&
                  !searcher.at_bound(best.objective());
       ++r) {
    State start = searcher.make_state(searcher.restart(r));
    searcher.descend(start);
    if (start.objective() < best.objective()) best = std::move(start);
  }
  // Iterated local search: kick the best plan, descend, keep improvements.
  for (int64_t kicks = 0; kicks < options.pack_budget && !searcher.exhausted() &&
                          !searcher.at_bound(best.objective());
       ++kicks) {
    State trial = best;
    searcher.kick(trial);
    searcher.descend(trial);
    if (trial.objective() < best.objective() * (1 - kEps)) best = std::move(trial);
  }
  if (best.objective() >= initial_objective) {
    if (packs) *packs = initial_packs;
    return {initial.pipelines, initial_objective};
  }
  DispatchResult result;
  result.pipelines = std::move(best.ids);
  result.objective = best.objective();
  if (packs) *packs = std::move(best.packs);
  return result;
}

}  // namespace hydraulis::planner
