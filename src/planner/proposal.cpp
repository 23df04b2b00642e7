// Strategy proposal DP (spec.md §5). Rows are GPU counts n = r·N_STEP, columns grid points
// s = j·S_STEP; t[r][j] = least time to process every length <= s with at most n GPUs:
//   t[r][j] = min(t[r−1][j], min_{k, i<j, d} max(t[r − d·g_k/N_STEP][i], cost_k(i, j] / d)).
// cost_k(i, j] is accumulated chunk by chunk while i walks down, so each (n, s, k, l) is O(1)
// before the d loop, which stops as soon as t[n − d·g][i] alone reaches the incumbent
// (t is nonincreasing in n). Tests: tests/planner/proposal_test.cpp.
#include "planner/proposal.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/check.h"

namespace hydraulis::planner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr int64_t kMaxGridPoints = 1 << 16;
constexpr int64_t kMaxCells = int64_t{1} << 24;  // rows × grid points kept in memory

// Per-scheme data used in the inner loops.
struct SchemeEntry {
  const SchemeCost* cost = nullptr;
  int gpus = 0;
  int64_t cap = 0;  // max_tokens under the layout
};

// Histogram cut into S_STEP chunks: chunk j (1-based) holds lengths in ((j−1)·S_STEP, j·S_STEP].
struct Chunks {
  int64_t s_step = 0;
  int64_t num = 0;                        // J
  std::vector<int64_t> longest;           // [j]: longest length present, 0 when empty
  std::vector<std::vector<double>> sums;  // [k][j]: Σ count·(a·s² + b·s + c)
  std::vector<double> sequences;          // [j]: Σ count
};

struct BackPointer {
  int32_t k = -1;  // -1: inherited from row r − 1
  int32_t i = 0;   // previous grid point
  int32_t d = 0;   // replicas
};

struct DpResult {
  int64_t rows = 0;  // R + 1
  int64_t cols = 0;  // J + 1
  std::vector<double> t;
  std::vector<BackPointer> back;
  int64_t cells = 0;
  double at(int64_t r, int64_t j) const { return t[r * cols + j]; }
};

Chunks make_chunks(const LengthHistogram& h, const std::vector<SchemeEntry>& schemes,
                   int64_t s_step, int64_t num) {
  Chunks c;
  c.s_step = s_step;
  c.num = num;
  c.longest.assign(num + 1, 0);
  c.sequences.assign(num + 1, 0.0);
  c.sums.assign(schemes.size(), std::vector<double>(num + 1, 0.0));
  for (size_t x = 0; x < h.lengths.size(); ++x) {
    int64_t s = h.lengths[x];
    int64_t j = (s + s_step - 1) / s_step;
    HYD_CHECK(j >= 1 && j <= num, "length {} outside the grid (J = {})", s, num);
    c.longest[j] = std::max(c.longest[j], s);
    c.sequences[j] += h.counts[x];
    for (size_t k = 0; k < schemes.size(); ++k) {
      const SchemeCost& cost = *schemes[k].cost;
      c.sums[k][j] += h.counts[x] * (sequence_cost(cost, s) + cost.c);
    }
  }
  return c;
}

// Warm-up + cool-down of a pipeline whose longest sequence is `longest` (original: added even
// when the range is empty, with longest 0).
double warmup(const SchemeCost& cost, int64_t longest) {
  return static_cast<double>(cost.scheme.pp - 1) * (sequence_cost(cost, longest) + cost.c);
}

DpResult run_dp(const std::vector<SchemeEntry>& schemes, const Chunks& chunks, int num_gpus,
                int n_step, CapacityRule rule) {
  DpResult dp;
  const int64_t rows = num_gpus / n_step + 1;
  const int64_t cols = chunks.num + 1;
  dp.rows = rows;
  dp.cols = cols;
  dp.t.assign(rows * cols, kInf);
  dp.back.assign(rows * cols, BackPointer{});
  for (int64_t r = 0; r < rows; ++r) dp.t[r * cols] = 0.0;
  int64_t cells = 0;
  for (int64_t r = 1; r < rows; ++r) {
    const int64_t n = r * n_step;
    for (int64_t j = 1; j < cols; ++j) {
      double best = dp.t[(r - 1) * cols + j];
      BackPointer choice{-1, 0, 0};
      for (size_t k = 0; k < schemes.size(); ++k) {
        const SchemeEntry& e = schemes[k];
        if (e.gpus > n || e.cap <= 0) continue;
        if (rule == CapacityRule::kRangeEnd && e.cap < j * chunks.s_step) continue;
        const int64_t max_d = n / e.gpus;
        double range_sum = 0;
        int64_t longest = 0;
        for (int64_t i = j - 1; i >= 0; --i) {  // l = (j − i)·S_STEP, ascending
          range_sum += chunks.sums[k][i + 1];
          longest = std::max(longest, chunks.longest[i + 1]);
          if (rule == CapacityRule::kLongestLength && e.cap < longest) break;
          const double cost = range_sum + warmup(*e.cost, longest);
          // cost only grows as the range widens, so no wider range can beat `best` either.
          if (cost / static_cast<double>(max_d) >= best) break;
          // Smallest d with cost / d < best.
          int64_t d = 1;
          if (best < kInf) d = std::max<int64_t>(1, static_cast<int64_t>(cost / best));
          for (; d <= max_d; ++d) {
            const int64_t used = d * e.gpus;
            if (used % n_step != 0) continue;
            const double prev = dp.t[(r - used / n_step) * cols + i];
            ++cells;
            if (prev >= best) break;  // t grows with d from here on
            const double value = std::max(prev, cost / static_cast<double>(d));
            if (value < best) {
              best = value;
              choice = BackPointer{static_cast<int32_t>(k), static_cast<int32_t>(i),
                                   static_cast<int32_t>(d)};
            }
          }
        }
      }
      dp.t[r * cols + j] = best;
      dp.back[r * cols + j] = choice;
    }
  }
  dp.cells = cells;
  return dp;
}

std::vector<ProposalSegment> trace(const DpResult& dp, const std::vector<SchemeEntry>& schemes,
                                   const Chunks& chunks, int n_step, int64_t r, int64_t j) {
  std::vector<ProposalSegment> segments;
  while (j > 0) {
    const BackPointer& bp = dp.back[r * dp.cols + j];
    if (bp.k < 0) {
      HYD_CHECK(r > 0, "trace fell off row 0 at grid point {}", j);
      --r;
      continue;
    }
    const SchemeEntry& e = schemes[bp.k];
    double sum = 0;
    int64_t longest = 0;
    for (int64_t x = bp.i + 1; x <= j; ++x) {
      sum += chunks.sums[bp.k][x];
      longest = std::max(longest, chunks.longest[x]);
    }
    ProposalSegment seg;
    seg.begin = bp.i * chunks.s_step;
    seg.end = j * chunks.s_step;
    seg.scheme = e.cost->scheme;
    seg.replicas = bp.d;
    seg.cost_ms = (sum + warmup(*e.cost, longest)) / bp.d;
    segments.push_back(seg);
    r -= static_cast<int64_t>(bp.d) * e.gpus / n_step;
    j = bp.i;
  }
  std::reverse(segments.begin(), segments.end());
  return segments;
}

void sort_pipelines(Strategy& strategy) {
  std::stable_sort(strategy.begin(), strategy.end(), [](const Scheme& x, const Scheme& y) {
    if (x.tp != y.tp) return x.tp > y.tp;
    if (x.cp != y.cp) return x.cp > y.cp;
    return x.pp > y.pp;
  });
}

// The DP allows "at most N" GPUs; a strategy must use exactly N. Leftover GPUs become extra
// replicas (never raising the estimate): first of a segment scheme that fits, the one with the
// highest per-replica cost; else pipelines of the largest scheme that fits memory (appended to
// `extra`; they idle or take sequences at dispatch time). False when the leftover cannot be used.
bool fill_leftover(ProposedStrategy& p, const std::vector<SchemeEntry>& schemes, int num_gpus,
                   std::vector<Scheme>& extra) {
  int used = 0;
  for (const ProposalSegment& s : p.segments) used += s.replicas * s.scheme.gpus();
  int left = num_gpus - used;
  while (left > 0) {
    ProposalSegment* target = nullptr;
    for (ProposalSegment& s : p.segments) {
      if (s.scheme.gpus() > left) continue;
      if (target == nullptr || s.cost_ms > target->cost_ms) target = &s;
    }
    if (target != nullptr) {
      double total = target->cost_ms * target->replicas;
      target->replicas += 1;
      target->cost_ms = total / target->replicas;
      left -= target->scheme.gpus();
      p.filled_gpus += target->scheme.gpus();
      continue;
    }
    const SchemeEntry* pick = nullptr;
    for (const SchemeEntry& e : schemes) {
      if (e.gpus > left || e.cap <= 0) continue;
      if (pick == nullptr || e.gpus > pick->gpus) pick = &e;
    }
    if (pick == nullptr) return false;
    extra.push_back(pick->cost->scheme);
    left -= pick->gpus;
    p.filled_gpus += pick->gpus;
  }
  return true;
}

// The homogeneous optimizer-layout strategy; it covers the lengths its scheme holds.
ProposedStrategy homogeneous_strategy(const SchemeCost& cost, int64_t cap,
                                      const LengthHistogram& histogram, int num_gpus) {
  const int replicas = num_gpus / cost.scheme.gpus();
  ProposedStrategy homo;
  homo.strategy.assign(replicas, cost.scheme);
  LengthHistogram held;
  for (size_t i = 0; i < histogram.lengths.size() && histogram.lengths[i] <= cap; ++i) {
    held.lengths.push_back(histogram.lengths[i]);
    held.counts.push_back(histogram.counts[i]);
  }
  homo.covered_length = std::min(cap, histogram.longest());
  homo.covered_sequences = held.total_sequences();
  homo.estimated_ms = homogeneous_time(cost, held, replicas);
  homo.segments.push_back(
      ProposalSegment{0, homo.covered_length, cost.scheme, replicas, homo.estimated_ms});
  return homo;
}

struct Prepared {
  LengthHistogram histogram;  // clipped
  int64_t s_top = 0;
  int64_t num_chunks = 0;
};

core::StatusOr<Prepared> prepare(const SchemeSpace& space, const LengthHistogram& histogram,
                                 const ProposalOptions& o) {
  if (o.num_gpus <= 0)
    return core::invalid_argument("--num-gpus must be positive, got {}", o.num_gpus);
  if (o.n_step <= 0 || o.num_gpus % o.n_step != 0) {
    return core::invalid_argument(
        "--n-step {} must be positive and divide --num-gpus {} (e.g. --n-step 1)", o.n_step,
        o.num_gpus);
  }
  if (o.s_step <= 0) return core::invalid_argument("--s-step must be positive, got {}", o.s_step);
  if (o.max_seq_len < 0) {
    return core::invalid_argument("--max-seq-len must be positive, got {}", o.max_seq_len);
  }
  if (histogram.lengths.empty()) {
    return core::invalid_argument("the length histogram is empty; give at least one sequence");
  }
  if (space.schemes().empty()) return core::invalid_argument("the scheme space has no scheme");
  Prepared p;
  int64_t cap = o.max_seq_len > 0 ? o.max_seq_len : histogram.longest();
  p.histogram = clip_histogram(histogram, cap);
  const int64_t longest = p.histogram.longest();
  p.num_chunks = (longest + o.s_step - 1) / o.s_step;
  p.s_top = p.num_chunks * o.s_step;
  if (p.num_chunks > kMaxGridPoints) {
    return core::invalid_argument(
        "{} grid points (longest length {} / --s-step {}) exceed {}; raise --s-step", p.num_chunks,
        longest, o.s_step, kMaxGridPoints);
  }
  if ((o.num_gpus / o.n_step + 1) * (p.num_chunks + 1) > kMaxCells) {
    return core::invalid_argument(
        "the DP table would hold {} x {} cells; raise --n-step or --s-step",
        o.num_gpus / o.n_step + 1, p.num_chunks + 1);
  }
  return p;
}

std::vector<SchemeEntry> scheme_entries(const SchemeSpace& space, const OptimizerLayout& layout) {
  std::vector<SchemeEntry> out;
  for (const SchemeCost& cost : space.schemes()) {
    auto tokens = max_tokens(space, cost.scheme, layout);
    out.push_back(SchemeEntry{&cost, cost.scheme.gpus(), tokens.is_ok() ? *tokens : 0});
  }
  return out;
}

OptimizerLayout layout_of(const Scheme& scheme, int num_gpus) {
  return OptimizerLayout{num_gpus / (scheme.tp * scheme.pp), scheme.tp, scheme.pp};
}

core::StatusOr<Scheme> choose_optimizer_scheme(const SchemeSpace& space, const Prepared& prep,
                                               const ProposalOptions& o) {
  if (o.layout.has_value()) {
    const OptimizerLayout& l = *o.layout;
    if (l.dp <= 0 || l.tp <= 0 || l.pp <= 0 ||
        static_cast<int64_t>(l.dp) * l.tp * l.pp != o.num_gpus) {
      return core::invalid_argument(
          "optimizer layout (dp {}, tp {}, pp {}) must have positive degrees with dp·tp·pp = "
          "--num-gpus {}",
          l.dp, l.tp, l.pp, o.num_gpus);
    }
    Scheme scheme{1, l.tp, l.pp};
    if (space.find(scheme) == nullptr) {
      return core::invalid_argument("optimizer layout scheme {} is not in the scheme space",
                                    scheme.to_string());
    }
    return scheme;
  }
  const int64_t longest = prep.histogram.longest();
  struct Candidate {
    Scheme scheme;
    double dp_best = kInf;
    double homogeneous = kInf;
  };
  std::vector<Candidate> candidates;
  int64_t best_cap = 0;
  std::string best_cap_scheme = "none";
  for (const SchemeCost& cost : space.schemes()) {
    const int g = cost.scheme.gpus();
    if (o.num_gpus % g != 0) continue;
    OptimizerLayout layout = layout_of(cost.scheme, o.num_gpus);
    auto cap = max_tokens(space, cost.scheme, layout);
    if (!cap.is_ok()) continue;
    if (*cap > best_cap) {
      best_cap = *cap;
      best_cap_scheme = cost.scheme.to_string();
    }
    if (*cap < longest) continue;
    Candidate c;
    c.scheme = cost.scheme;
    c.homogeneous = homogeneous_time(cost, prep.histogram, o.num_gpus / g);
    std::vector<SchemeEntry> entries = scheme_entries(space, layout);
    Chunks chunks = make_chunks(prep.histogram, entries, o.s_step, prep.num_chunks);
    DpResult dp = run_dp(entries, chunks, o.num_gpus, o.n_step, o.capacity);
    c.dp_best = dp.at(dp.rows - 1, dp.cols - 1);
    candidates.push_back(c);
  }
  if (candidates.empty()) {
    return core::invalid_argument(
        "no homogeneous strategy on {} GPUs holds the longest sequence ({} tokens); the largest "
        "micro-batch is {} tokens with {}: lower --max-seq-len, add GPUs or profile a scheme with "
        "more tp/pp/cp",
        o.num_gpus, longest, best_cap, best_cap_scheme);
  }
  auto best = std::min_element(candidates.begin(), candidates.end(),
                               [](const Candidate& x, const Candidate& y) {
                                 if (x.dp_best != y.dp_best) return x.dp_best < y.dp_best;
                                 return x.homogeneous < y.homogeneous;
                               });
  return best->scheme;
}

}  // namespace

double LengthHistogram::total_sequences() const {
  double total = 0;
  for (double c : counts) total += c;
  return total;
}

double LengthHistogram::total_tokens() const {
  double total = 0;
  for (size_t i = 0; i < lengths.size(); ++i) total += counts[i] * static_cast<double>(lengths[i]);
  return total;
}

LengthHistogram make_length_histogram(std::span<const int64_t> lengths) {
  std::map<int64_t, double> counts;
  for (int64_t s : lengths) {
    if (s > 0) counts[s] += 1.0;
  }
  LengthHistogram h;
  for (const auto& [s, c] : counts) {
    h.lengths.push_back(s);
    h.counts.push_back(c);
  }
  return h;
}

LengthHistogram scale_to_global_batch(const LengthHistogram& histogram, double global_token_num) {
  LengthHistogram out = histogram;
  const double tokens = histogram.total_tokens();
  if (tokens <= 0) return out;
  for (double& c : out.counts) c *= global_token_num / tokens;
  return out;
}

LengthHistogram clip_histogram(const LengthHistogram& histogram, int64_t max_len) {
  LengthHistogram out;
  for (size_t i = 0; i < histogram.lengths.size(); ++i) {
    if (histogram.counts[i] <= 0 || histogram.lengths[i] <= 0) continue;
    int64_t s = std::min(histogram.lengths[i], max_len);
    if (!out.lengths.empty() && out.lengths.back() == s) {
      out.counts.back() += histogram.counts[i];
    } else {
      out.lengths.push_back(s);
      out.counts.push_back(histogram.counts[i]);
    }
  }
  return out;
}

double homogeneous_time(const SchemeCost& cost, const LengthHistogram& histogram, int dp) {
  HYD_CHECK(dp > 0, "dp = {}", dp);
  return histogram_range_cost(cost, histogram.lengths, histogram.counts) / dp;
}

std::vector<Strategy> Proposal::strategy_list() const {
  std::vector<Strategy> out;
  for (const ProposedStrategy& p : strategies) out.push_back(p.strategy);
  return out;
}

core::StatusOr<OptimizerLayout> choose_optimizer_layout(const SchemeSpace& space,
                                                        const LengthHistogram& histogram,
                                                        const ProposalOptions& options) {
  HYD_ASSIGN_OR_RETURN(Prepared prep, prepare(space, histogram, options));
  HYD_ASSIGN_OR_RETURN(Scheme scheme, choose_optimizer_scheme(space, prep, options));
  return layout_of(scheme, options.num_gpus);
}

core::StatusOr<Proposal> propose_strategies(const SchemeSpace& space,
                                            const LengthHistogram& histogram,
                                            const ProposalOptions& options) {
  HYD_ASSIGN_OR_RETURN(Prepared prep, prepare(space, histogram, options));
  HYD_ASSIGN_OR_RETURN(Scheme os_scheme, choose_optimizer_scheme(space, prep, options));
  Proposal out;
  out.layout = layout_of(os_scheme, options.num_gpus);
  out.s_top = prep.s_top;
  out.s_step = options.s_step;
  out.total_sequences = prep.histogram.total_sequences();
  std::vector<SchemeEntry> entries = scheme_entries(space, out.layout);
  for (const SchemeEntry& e : entries) out.capacities.push_back({e.cost->scheme, e.cap});

  const SchemeCost* os_cost = space.find(os_scheme);
  HYD_CHECK(os_cost != nullptr, "scheme {}", os_scheme.to_string());
  int64_t os_cap = 0;
  for (const SchemeCapacity& c : out.capacities) {
    if (c.scheme == os_scheme) os_cap = c.max_tokens;
  }
  out.strategies.push_back(
      homogeneous_strategy(*os_cost, os_cap, prep.histogram, options.num_gpus));

  Chunks chunks = make_chunks(prep.histogram, entries, options.s_step, prep.num_chunks);
  DpResult dp = run_dp(entries, chunks, options.num_gpus, options.n_step, options.capacity);
  out.dp_cells = dp.cells;
  const int64_t last_row = dp.rows - 1;
  double covered = 0;
  for (int64_t j = 1; j < dp.cols; ++j) {
    covered += chunks.sequences[j];
    const double value = dp.at(last_row, j);
    out.optimum_by_length.push_back(value);
    out.strategy_by_length.push_back(-1);
    if (!(value < kInf)) continue;
    ProposedStrategy p;
    p.segments = trace(dp, entries, chunks, options.n_step, last_row, j);
    p.covered_length = std::min(j * options.s_step, prep.histogram.longest());
    p.covered_sequences = covered;
    p.estimated_ms = value;
    std::vector<Scheme> extra;
    if (!fill_leftover(p, entries, options.num_gpus, extra)) continue;
    for (const ProposalSegment& s : p.segments) {
      for (int d = 0; d < s.replicas; ++d) p.strategy.push_back(s.scheme);
    }
    p.strategy.insert(p.strategy.end(), extra.begin(), extra.end());
    sort_pipelines(p.strategy);
    bool seen = false;
    for (size_t q = 0; q < out.strategies.size(); ++q) {
      if (out.strategies[q].strategy == p.strategy) {
        seen = true;
        if (q > 0) out.strategies[q] = p;  // keep the widest coverage
        out.strategy_by_length.back() = static_cast<int>(q);
        break;
      }
    }
    if (!seen) {
      out.strategy_by_length.back() = static_cast<int>(out.strategies.size());
      out.strategies.push_back(std::move(p));
    }
  }
  if (out.strategies.size() == 1 && !(dp.at(last_row, dp.cols - 1) < kInf)) {
    return core::invalid_argument(
        "no strategy on {} GPUs processes the longest sequence ({} tokens); lower --max-seq-len "
        "or add GPUs",
        options.num_gpus, prep.histogram.longest());
  }
  return out;
}

core::Json proposal_to_json(const Proposal& proposal) {
  using core::Json;
  Json caps = Json::array();
  for (const SchemeCapacity& c : proposal.capacities) {
    caps.push_back(
        Json{{"scheme", {c.scheme.cp, c.scheme.tp, c.scheme.pp}}, {"max_tokens", c.max_tokens}});
  }
  Json list = Json::array();
  for (const ProposedStrategy& p : proposal.strategies) {
    Json pipelines = Json::array();
    for (const Scheme& s : p.strategy) pipelines.push_back({s.cp, s.tp, s.pp});
    Json segments = Json::array();
    for (const ProposalSegment& s : p.segments) {
      segments.push_back(Json{{"lengths", {s.begin, s.end}},
                              {"scheme", {s.scheme.cp, s.scheme.tp, s.scheme.pp}},
                              {"replicas", s.replicas},
                              {"estimated_ms", s.cost_ms}});
    }
    list.push_back(Json{{"strategy", format_strategy(p.strategy)},
                        {"summary", summarize_strategy(p.strategy)},
                        {"pipelines", pipelines},
                        {"covered_length", p.covered_length},
                        {"covered_sequences", p.covered_sequences},
                        {"estimated_ms", p.estimated_ms},
                        {"filled_gpus", p.filled_gpus},
                        {"segments", segments}});
  }
  Json grid = Json::array();
  for (size_t j = 0; j < proposal.optimum_by_length.size(); ++j) {
    const double t = proposal.optimum_by_length[j];
    grid.push_back(Json{{"s", static_cast<int64_t>(j + 1) * proposal.s_step},
                        {"optimum_ms", t < kInf ? Json(t) : Json(nullptr)},
                        {"strategy", proposal.strategy_by_length[j]}});
  }
  return Json{
      {"grid", grid},
      {"optimizer_layout",
       {{"dp", proposal.layout.dp}, {"tp", proposal.layout.tp}, {"pp", proposal.layout.pp}}},
      {"strategy_list", format_strategy_list(proposal.strategy_list())},
      {"s_top", proposal.s_top},
      {"total_sequences", proposal.total_sequences},
      {"dp_cells", proposal.dp_cells},
      {"max_tokens", caps},
      {"strategies", list}};
}

}  // namespace hydraulis::planner
