// Strategy proposal: the DP optimum at every grid point equals an independent brute-force
// enumeration (every partition of the length grid into ranges × every scheme and replica count)
// on small instances, and on the 7b reference file at 16 and 32 GPUs the proposed list is valid
// (homogeneous first, exactly N GPUs each, pipelines by tp descending, distinct strategies).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>

#include "planner_test_util.h"
#include "planner/proposal.h"

namespace hydraulis::planner {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Four schemes with no model state; A = 1 byte, H = 1024, L = 1, bound 300 KiB, so the caps are
// floor(300·1024 / (1024/tp)) aligned to 128: tp1 → 256, tp2 → 512, tp4 → 1152.
SchemeSpace toy_space() {
  SchemeSpace space;
  space.add_scheme(SchemeCost{Scheme{1, 1, 1}, 4e-4, 1.0, 5.0});
  space.add_scheme(SchemeCost{Scheme{1, 2, 1}, 2.2e-4, 0.55, 8.0});
  space.add_scheme(SchemeCost{Scheme{1, 1, 2}, 2.1e-4, 0.52, 3.0});
  space.add_scheme(SchemeCost{Scheme{1, 4, 1}, 1.2e-4, 0.3, 10.0});
  MemoryRegression memory;
  memory.activation_per_tp = {{1, 1.0}, {2, 1.0}, {4, 1.0}};
  memory.block_bytes = 0;
  memory.alpha = 0;
  memory.gap = {{"node", 0.0}};
  memory.safe_bound = 0;
  space.set_memory(memory);
  space.set_model(ModelDims{1024, 1, 0});
  ClusterConfig cluster;
  cluster.gpu_memory_bound = 300.0 * 1024;
  space.set_cluster(cluster);
  return space;
}

LengthHistogram toy_histogram() {
  LengthHistogram h;
  h.lengths = {50, 100, 130, 200, 250, 300, 420, 500, 600};
  h.counts = {6, 4, 3, 2, 2, 1, 1, 1, 1};
  return h;
}

// Independent enumeration: min over partitions of (0, J·step] into ranges and (scheme, d) per
// range with d·gpus a multiple of n_step and Σ d·gpus <= N of max(range cost / d).
double brute_force(const SchemeSpace& space, const LengthHistogram& h, const ProposalOptions& o,
                   const OptimizerLayout& layout, int64_t grid_points) {
  std::vector<int64_t> caps;
  for (const SchemeCost& c : space.schemes()) caps.push_back(*max_tokens(space, c.scheme, layout));
  auto range_cost = [&](const SchemeCost& cost, int64_t lo, int64_t hi, int64_t* longest) {
    std::vector<int64_t> lengths;
    std::vector<double> counts;
    *longest = 0;
    for (size_t x = 0; x < h.lengths.size(); ++x) {
      if (h.lengths[x] > lo && h.lengths[x] <= hi) {
        lengths.push_back(h.lengths[x]);
        counts.push_back(h.counts[x]);
        *longest = h.lengths[x];
      }
    }
    return histogram_range_cost(cost, lengths, counts);
  };
  double best = kInf;
  const int64_t cuts = grid_points - 1;
  for (int64_t mask = 0; mask < (int64_t{1} << cuts); ++mask) {
    std::vector<std::pair<int64_t, int64_t>> ranges;  // grid indices (lo, hi]
    int64_t lo = 0;
    for (int64_t p = 1; p <= grid_points; ++p) {
      if (p == grid_points || (mask >> (p - 1) & 1)) {
        ranges.push_back({lo, p});
        lo = p;
      }
    }
    std::function<void(size_t, int, double)> assign = [&](size_t r, int used, double worst) {
      if (worst >= best) return;
      if (r == ranges.size()) {
        best = worst;
        return;
      }
      const int64_t range_lo = ranges[r].first * o.s_step;
      const int64_t range_hi = ranges[r].second * o.s_step;
      for (size_t k = 0; k < space.schemes().size(); ++k) {
        const SchemeCost& cost = space.schemes()[k];
        int64_t longest = 0;
        double c = range_cost(cost, range_lo, range_hi, &longest);
        bool holds =
            o.capacity == CapacityRule::kRangeEnd ? caps[k] >= range_hi : caps[k] >= longest;
        if (!holds || caps[k] <= 0) continue;
        for (int d = 1; used + d * cost.scheme.gpus() <= o.num_gpus; ++d) {
          if ((d * cost.scheme.gpus()) % o.n_step != 0) continue;
          assign(r + 1, used + d * cost.scheme.gpus(), std::max(worst, c / d));
        }
      }
    };
    assign(0, 0, 0.0);
  }
  return best;
}

void check_against_brute_force(const ProposalOptions& options) {
  SchemeSpace space = toy_space();
  LengthHistogram h = toy_histogram();
  auto proposal = propose_strategies(space, h, options);
  ASSERT_TRUE(proposal.is_ok()) << proposal.status().to_string();
  const int64_t grid = (600 + options.s_step - 1) / options.s_step;
  ASSERT_EQ(static_cast<int64_t>(proposal->optimum_by_length.size()), grid);
  for (int64_t j = 1; j <= grid; ++j) {
    double expected = brute_force(space, h, options, proposal->layout, j);
    double got = proposal->optimum_by_length[j - 1];
    if (std::isinf(expected)) {
      EXPECT_TRUE(std::isinf(got)) << "grid point " << j;
      continue;
    }
    EXPECT_NEAR(got, expected, 1e-9 * expected) << "grid point " << j << " N " << options.num_gpus;
    int index = proposal->strategy_by_length[j - 1];
    ASSERT_GE(index, 0);
    const ProposedStrategy& s = proposal->strategies[index];
    EXPECT_EQ(strategy_gpus(s.strategy), options.num_gpus);
    double worst = 0;
    for (const ProposalSegment& seg : s.segments) worst = std::max(worst, seg.cost_ms);
    EXPECT_LE(worst, s.estimated_ms * (1 + 1e-12));
  }
}

TEST(Proposal, MatchesBruteForceOnSmallInstances) {
  for (CapacityRule rule : {CapacityRule::kRangeEnd, CapacityRule::kLongestLength}) {
    for (int n : {4, 6}) {
      for (int64_t step : {128, 160, 192}) {
        ProposalOptions o;
        o.num_gpus = n;
        o.s_step = step;
        o.capacity = rule;
        o.layout = OptimizerLayout{n, 1, 1};
        check_against_brute_force(o);
      }
    }
  }
  ProposalOptions stepped;  // N_STEP 2: every range's GPUs come in pairs
  stepped.num_gpus = 8;
  stepped.n_step = 2;
  stepped.s_step = 128;
  stepped.layout = OptimizerLayout{8, 1, 1};
  check_against_brute_force(stepped);
}

TEST(Proposal, LongestLengthRuleRelaxesTheOriginalRule) {
  // s_step 192: the range (384, 576] holds 420 and 500. tp2 (cap 512) holds both, but the
  // original rule asks for cap >= 576 and leaves only tp4; the optimum can only improve.
  SchemeSpace space = toy_space();
  ProposalOptions o;
  o.num_gpus = 6;
  o.s_step = 192;
  o.layout = OptimizerLayout{6, 1, 1};
  o.capacity = CapacityRule::kRangeEnd;
  auto original = propose_strategies(space, toy_histogram(), o);
  o.capacity = CapacityRule::kLongestLength;
  auto ours = propose_strategies(space, toy_histogram(), o);
  ASSERT_TRUE(original.is_ok() && ours.is_ok());
  ASSERT_EQ(ours->optimum_by_length.size(), 4u);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_LE(ours->optimum_by_length[j], original->optimum_by_length[j]);
  }
  EXPECT_LT(ours->optimum_by_length[2], original->optimum_by_length[2]);
}

TEST(Proposal, IdleGpusBecomeExtraPipelines) {
  // Three sequences of 600 tokens: only tp4 (cap 1152) holds them, one tp4 pipeline fits in 6
  // GPUs, and the 2 GPUs left cannot host another; they become a (1, 2, 1) pipeline.
  SchemeSpace space = toy_space();
  LengthHistogram h;
  h.lengths = {600};
  h.counts = {3};
  ProposalOptions o;
  o.num_gpus = 6;
  o.s_step = 128;
  o.layout = OptimizerLayout{6, 1, 1};
  auto proposal = propose_strategies(space, h, o);
  ASSERT_TRUE(proposal.is_ok()) << proposal.status().to_string();
  const ProposedStrategy& top = proposal->strategies[proposal->strategy_by_length.back()];
  EXPECT_EQ(top.strategy, (Strategy{{1, 4, 1}, {1, 2, 1}}));
  EXPECT_EQ(top.filled_gpus, 2);
  // 3·(1.2e-4·600² + 0.3·600 + 10) = 3·(43.2 + 180 + 10) = 699.6
  EXPECT_NEAR(top.estimated_ms, 699.6, 1e-9);
}

SchemeSpace load(const std::string& model) { return test_util::load_reference_space(model); }

// A long tail: lengths 64·i (i = 1..512, up to 32768) with counts 4096 / i².
LengthHistogram long_tail() {
  LengthHistogram h;
  for (int i = 1; i <= 512; ++i) {
    h.lengths.push_back(64 * i);
    h.counts.push_back(4096.0 / (static_cast<double>(i) * i));
  }
  return h;
}

TEST(Proposal, StructureOn7bAt16And32Gpus) {
  SchemeSpace space = load("7b");
  for (int n : {16, 32}) {
    ProposalOptions o;
    o.num_gpus = n;
    o.s_step = 128;
    auto proposal = propose_strategies(space, long_tail(), o);
    ASSERT_TRUE(proposal.is_ok()) << proposal.status().to_string();
    const std::vector<Strategy> list = proposal->strategy_list();
    ASSERT_GE(list.size(), 2u);
    core::Status valid = validate_strategy_list(list, space, n);
    EXPECT_TRUE(valid.is_ok()) << valid.to_string();
    // The first strategy is the homogeneous optimizer-layout strategy and holds 32768.
    const OptimizerLayout l = proposal->layout;
    EXPECT_EQ(l.dp * l.tp * l.pp, n);
    for (const Scheme& s : list[0]) EXPECT_EQ(s, (Scheme{1, l.tp, l.pp}));
    EXPECT_EQ(proposal->strategies[0].covered_length, 32768);
    auto chosen = choose_optimizer_layout(space, long_tail(), o);
    ASSERT_TRUE(chosen.is_ok());
    EXPECT_EQ(chosen->dp, l.dp);
    EXPECT_EQ(chosen->tp, l.tp);
    for (size_t i = 0; i < list.size(); ++i) {
      EXPECT_EQ(strategy_gpus(list[i]), n);
      for (size_t p = 1; p < list[i].size(); ++p) EXPECT_GE(list[i][p - 1].tp, list[i][p].tp);
      for (size_t j = 0; j < i; ++j) EXPECT_NE(list[i], list[j]) << i << " repeats " << j;
    }
    // t[N][s] never decreases with s; the heterogeneous optimum at 32768 beats homogeneous.
    const auto& t = proposal->optimum_by_length;
    ASSERT_EQ(t.size(), 256u);
    for (size_t j = 1; j < t.size(); ++j) EXPECT_GE(t[j], t[j - 1]);
    EXPECT_LT(t.back(), proposal->strategies[0].estimated_ms);
    EXPECT_EQ(proposal->strategies[proposal->strategy_by_length.back()].covered_length, 32768);
    // Same result when the chosen layout is given explicitly.
    o.layout = l;
    auto again = propose_strategies(space, long_tail(), o);
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->strategy_list(), list);
  }
}

TEST(Proposal, HistogramHelpers) {
  std::vector<int64_t> lengths = {5, 3, 5, 0, -1, 7};
  LengthHistogram h = make_length_histogram(lengths);
  EXPECT_EQ(h.lengths, (std::vector<int64_t>{3, 5, 7}));
  EXPECT_EQ(h.counts, (std::vector<double>{1, 2, 1}));
  EXPECT_EQ(h.total_tokens(), 20.0);
  EXPECT_EQ(h.total_sequences(), 4.0);
  LengthHistogram scaled = scale_to_global_batch(h, 40);
  EXPECT_EQ(scaled.counts, (std::vector<double>{2, 4, 2}));
  LengthHistogram clipped = clip_histogram(h, 5);
  EXPECT_EQ(clipped.lengths, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(clipped.counts, (std::vector<double>{1, 3}));
}

TEST(Proposal, Errors) {
  SchemeSpace space = load("7b");
  ProposalOptions o;
  o.num_gpus = 16;
  auto expect_error = [&](const ProposalOptions& opts, const LengthHistogram& h,
                          const std::string& needle) {
    auto p = propose_strategies(space, h, opts);
    ASSERT_FALSE(p.is_ok()) << needle;
    EXPECT_NE(p.status().message().find(needle), std::string::npos) << p.status().message();
  };
  ProposalOptions bad_step = o;
  bad_step.n_step = 3;
  expect_error(bad_step, long_tail(), "--n-step 3");
  ProposalOptions zero_s = o;
  zero_s.s_step = 0;
  expect_error(zero_s, long_tail(), "--s-step");
  expect_error(o, LengthHistogram{}, "empty");
  LengthHistogram huge;
  huge.lengths = {1000, 400000};
  huge.counts = {1, 1};
  expect_error(o, huge, "longest sequence (400000 tokens)");
  ProposalOptions wrong_layout = o;
  wrong_layout.layout = OptimizerLayout{4, 8, 1};
  expect_error(wrong_layout, long_tail(), "dp·tp·pp = --num-gpus 16");
  wrong_layout.layout = OptimizerLayout{16, 1, 1};
  expect_error(wrong_layout, long_tail(), "(1, 1, 1) is not in the scheme space");
}

}  // namespace
}  // namespace hydraulis::planner
