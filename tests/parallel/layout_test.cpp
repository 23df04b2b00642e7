// Logical parameters vs ParameterStore, strategy and optimizer layouts (exact values and
// brute-force element counts), reshard plans (a worked example, errors) and propagation of
// parameters and gradients between random strategies through the reference executor.
#include "parallel/layout.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/parameters.h"
#include "parallel/reshard.h"

#include "tests/parallel/layout_test_util.h"

namespace hydraulis::parallel {

// Readable gtest failures (found by argument-dependent lookup).
void PrintTo(const Block& b, std::ostream* os) {
  *os << "{param " << b.param << " [" << b.row0 << ", " << b.row1 << ") x [" << b.col0 << ", "
      << b.col1 << ")}";
}
void PrintTo(const Copy& c, std::ostream* os) {
  *os << "{src t" << c.src_tensor << " (" << c.src_row << ", " << c.src_col << ") -> dst t"
      << c.dst_tensor << " (" << c.dst_row << ", " << c.dst_col << ") " << c.rows << "x" << c.cols
      << "}";
}

namespace {

using planner::Strategy;

using testing::grid_of;
using testing::small_config;

// How many times each element of each parameter appears in a layout (optionally only counting
// copies), by brute force.
std::vector<std::vector<int>> element_counts(const Layout& layout,
                                             const std::vector<LogicalParam>& params,
                                             bool only_counting) {
  std::vector<std::vector<int>> counts;
  for (const LogicalParam& p : params) counts.emplace_back(static_cast<size_t>(p.numel()), 0);
  for (const RankLayout& r : layout.ranks) {
    for (const LocalTensor& t : r.tensors) {
      if (only_counting && !t.counts_for_grad) continue;
      for (const Block& b : t.blocks) {
        const int64_t cols = params[static_cast<size_t>(b.param)].cols;
        for (int64_t i = b.row0; i < b.row1; ++i) {
          for (int64_t j = b.col0; j < b.col1; ++j) {
            ++counts[static_cast<size_t>(b.param)][static_cast<size_t>(i * cols + j)];
          }
        }
      }
    }
  }
  return counts;
}

// A known logical value: small integers, exact in float.
float logical_value(int param, int64_t row, int64_t col) {
  return static_cast<float>((param * 7 + row * 3 + col) % 61);
}

// The local storage of every tensor of a layout, filled from logical values.
std::vector<std::vector<std::vector<float>>> fill(const Layout& layout,
                                                  float (*value)(int, int64_t, int64_t)) {
  std::vector<std::vector<std::vector<float>>> data(layout.ranks.size());
  for (size_t r = 0; r < layout.ranks.size(); ++r) {
    for (const LocalTensor& t : layout.ranks[r].tensors) {
      std::vector<float> v;
      for (const Block& b : t.blocks) {
        for (int64_t i = b.row0; i < b.row1; ++i) {
          for (int64_t j = b.col0; j < b.col1; ++j) v.push_back(value(b.param, i, j));
        }
      }
      data[r].push_back(std::move(v));
    }
  }
  return data;
}

TEST(LogicalParams, MatchTheParameterStore) {
  for (model::LmHead head : {model::LmHead::kUntied, model::LmHead::kTied}) {
    model::LlamaConfig config = small_config(head);
    std::vector<LogicalParam> params = logical_params(config);
    model::ParameterStore store = model::ParameterStore::create(config);
    ASSERT_EQ(params.size(), store.all().size());
    for (size_t i = 0; i < params.size(); ++i) {
      const model::Parameter& p = store.all()[i];
      EXPECT_EQ(params[i].name, p.name);
      EXPECT_EQ(params[i].numel(), p.value.numel()) << p.name;
      EXPECT_EQ(params[i].rows, p.value.size(0)) << p.name;
      EXPECT_EQ(params[i].layer, p.layer) << p.name;
    }
  }
  std::vector<LogicalParam> params = logical_params(small_config());
  EXPECT_EQ(params.size(), 1u + 8 * 4 + 2);
  EXPECT_EQ(params[1].kind, ShardKind::kReplicated);
  EXPECT_EQ(params[7].name, "model.layers.0.mlp.gate_up_proj.weight");
  EXPECT_EQ(params[7].kind, ShardKind::kColumnFused2);
  EXPECT_EQ(params[8].kind, ShardKind::kRow);
  EXPECT_EQ(params.back().kind, ShardKind::kVocab);
}

TEST(TpShard, KindsSplitTheRightAxis) {
  std::vector<LogicalParam> params = logical_params(small_config());
  // q_proj (32, 32) column, tp 4 rank 1: rows [8, 16).
  EXPECT_EQ(tp_shard(params[2], 2, 4, 1), (std::vector<Block>{{2, 8, 16, 0, 32}}));
  // gate_up (48, 32), tp 2 rank 1: gate rows [12, 24) over up rows [36, 48).
  EXPECT_EQ(tp_shard(params[7], 7, 2, 1),
            (std::vector<Block>{{7, 12, 24, 0, 32}, {7, 36, 48, 0, 32}}));
  // down_proj (32, 24) row, tp 4 rank 3: cols [18, 24).
  EXPECT_EQ(tp_shard(params[8], 8, 4, 3), (std::vector<Block>{{8, 0, 32, 18, 24}}));
  EXPECT_EQ(tp_shard(params[1], 1, 4, 2), (std::vector<Block>{{1, 0, 32, 0, 1}}));
}

TEST(StrategyLayout, TwoPipelines) {
  model::LlamaConfig config = small_config();
  std::vector<LogicalParam> params = logical_params(config);
  Layout layout = strategy_layout(params, grid_of({{1, 2, 1}, {1, 1, 2}}), config);
  ASSERT_EQ(layout.world_size(), 4);
  // Ranks 0, 1: pipeline 0, every parameter, tp halves.
  ASSERT_EQ(layout.ranks[1].tensors.size(), params.size());
  EXPECT_EQ(layout.ranks[1].tensors[0].blocks, (std::vector<Block>{{0, 20, 40, 0, 32}}));
  EXPECT_FALSE(layout.ranks[1].tensors[1].counts_for_grad);  // input norm on tp rank 1
  EXPECT_TRUE(layout.ranks[0].tensors[1].counts_for_grad);
  // Rank 2: pipeline 1 stage 0 = embedding + layers 0, 1; rank 3: layers 2, 3 + norm + head.
  ASSERT_EQ(layout.ranks[2].tensors.size(), 1u + 16);
  EXPECT_EQ(layout.ranks[2].tensors[0].param, 0);
  EXPECT_EQ(layout.ranks[2].tensors.back().param, 16);
  ASSERT_EQ(layout.ranks[3].tensors.size(), 16u + 2);
  EXPECT_EQ(layout.ranks[3].tensors[0].param, 17);
  EXPECT_EQ(layout.ranks[3].tensors.back().param, 34);
  EXPECT_EQ(layout.ranks[3].tensors.back().rows(), 40);
  // Each pipeline holds every element once among its counting copies.
  for (const auto& counts : element_counts(layout, params, true)) {
    for (int c : counts) ASSERT_EQ(c, 2);
  }
}

TEST(StrategyLayout, TiedHeadAndCp) {
  model::LlamaConfig config = small_config(model::LmHead::kTied);
  std::vector<LogicalParam> params = logical_params(config);
  // (2, 1, 2): embedding on stage 0 and again (head copy, last) on stage 1; cp ranks equal.
  Layout layout = strategy_layout(params, grid_of({{2, 1, 2}, {1, 2, 1}}), config);
  EXPECT_EQ(layout.ranks[2].tensors.back().param, 0);
  EXPECT_EQ(layout.ranks[3].tensors.back().param, 0);
  EXPECT_EQ(layout.ranks[2].tensors[0].param, 17);
  EXPECT_EQ(layout.ranks[1].tensors.size(), layout.ranks[0].tensors.size());
  // pp = 1: the one embedding serves as the head.
  EXPECT_EQ(layout.ranks[4].tensors.size(), params.size());
  std::vector<std::vector<int>> counts = element_counts(layout, params, true);
  // Embedding: pipeline 0 has 2 cp ranks × 2 copies, pipeline 1 one copy per tp shard.
  for (int c : counts[0]) ASSERT_EQ(c, 5);
  for (int c : counts[5]) ASSERT_EQ(c, 3);  // a layer-0 parameter: 2 cp ranks + 1
}

TEST(OptimizerLayout, EveryElementOwnedOnce) {
  for (model::LmHead head : {model::LmHead::kUntied, model::LmHead::kTied}) {
    model::LlamaConfig config = small_config(head);
    std::vector<LogicalParam> params = logical_params(config);
    for (Strategy s : {Strategy{{1, 2, 2}, {1, 2, 2}}, Strategy{{1, 8, 1}}, Strategy{{2, 2, 1}},
                       Strategy(8, {1, 1, 1}), Strategy(3, {1, 1, 2}), Strategy{{3, 1, 1}}}) {
      auto layout = optimizer_layout(params, grid_of(s), config);
      ASSERT_TRUE(layout.is_ok()) << layout.status().message();
      for (const auto& counts : element_counts(*layout, params, false)) {
        for (int c : counts) ASSERT_EQ(c, 1) << planner::format_strategy(s);
      }
      for (const RankLayout& r : layout->ranks) {
        for (const LocalTensor& t : r.tensors) EXPECT_GT(t.rows(), 0);
      }
    }
  }
}

TEST(OptimizerLayout, SplitsRowsOfTheShard) {
  model::LlamaConfig config = small_config();
  std::vector<LogicalParam> params = logical_params(config);
  // (1, 2, 1) × 2: rank = pipeline·2 + tp. gate_up shard of tp 1 (rows [12, 24) + [36, 48)) is
  // split over pipelines 0 and 1: rank 1 gets gate rows [12, 24), rank 3 up rows [36, 48).
  auto layout = optimizer_layout(params, grid_of({{1, 2, 1}, {1, 2, 1}}), config);
  ASSERT_TRUE(layout.is_ok());
  // Every tensor is non-empty here, so tensor index = parameter index.
  EXPECT_EQ(layout->ranks[1].tensors[7].blocks, (std::vector<Block>{{7, 12, 24, 0, 32}}));
  EXPECT_EQ(layout->ranks[3].tensors[7].blocks, (std::vector<Block>{{7, 36, 48, 0, 32}}));
  // Input norm (32, 1) split over all 4 ranks: rank j gets rows [8j, 8j + 8).
  EXPECT_EQ(layout->ranks[2].tensors[1].blocks, (std::vector<Block>{{1, 16, 24, 0, 1}}));
  auto hetero = optimizer_layout(params, grid_of({{1, 2, 1}, {1, 1, 2}}), config);
  ASSERT_FALSE(hetero.is_ok());
  EXPECT_NE(hetero.status().message().find("homogeneous"), std::string::npos);
}

TEST(Reshard, TwoRanksOneMatrix) {
  // One 4 × 2 matrix. Optimizer layout: rank 0 rows [0, 2), rank 1 rows [2, 4). Strategy layout
  // (a row-parallel tp 2): rank 0 column 0, rank 1 column 1, all rows.
  Layout opt{{RankLayout{{LocalTensor{0, {{0, 0, 2, 0, 2}}, true}}},
              RankLayout{{LocalTensor{0, {{0, 2, 4, 0, 2}}, true}}}}};
  Layout strat{{RankLayout{{LocalTensor{0, {{0, 0, 4, 0, 1}}, true}}},
                RankLayout{{LocalTensor{0, {{0, 0, 4, 1, 2}}, true}}}}};
  auto plan = make_reshard_plan(opt, strat, ReshardMode::kAssign);
  ASSERT_TRUE(plan.is_ok()) << plan.status().message();
  EXPECT_EQ(plan->copies[0][0], (std::vector<Copy>{{0, 0, 0, 0, 0, 0, 2, 1}}));
  EXPECT_EQ(plan->copies[0][1], (std::vector<Copy>{{0, 0, 1, 0, 0, 0, 2, 1}}));
  EXPECT_EQ(plan->copies[1][0], (std::vector<Copy>{{0, 0, 0, 0, 2, 0, 2, 1}}));
  EXPECT_EQ(plan->copies[1][1], (std::vector<Copy>{{0, 0, 1, 0, 2, 0, 2, 1}}));
  EXPECT_EQ(plan->elements_across_ranks(), 4);
  EXPECT_EQ(plan->elements_local(), 4);
  // Values: m[i][j] = 10 i + j. Rank 0 holds rows 0-1 (0 1 10 11), rank 1 rows 2-3.
  std::vector<std::vector<std::vector<float>>> src{{{0, 1, 10, 11}}, {{20, 21, 30, 31}}}, dst;
  execute_reshard(*plan, opt, strat, src, dst, ReshardMode::kAssign);
  EXPECT_EQ(dst[0][0], (std::vector<float>{0, 10, 20, 30}));
  EXPECT_EQ(dst[1][0], (std::vector<float>{1, 11, 21, 31}));
  // Gradients back: both ranks' columns counted once; accumulate = assign here.
  auto back = make_reshard_plan(strat, opt, ReshardMode::kAccumulate);
  ASSERT_TRUE(back.is_ok()) << back.status().message();
  std::vector<std::vector<std::vector<float>>> grads;
  execute_reshard(*back, strat, opt, dst, grads, ReshardMode::kAccumulate);
  EXPECT_EQ(grads, src);
}

TEST(Reshard, Errors) {
  Layout one{{RankLayout{{LocalTensor{0, {{0, 0, 4, 0, 2}}, true}}}, RankLayout{}}};
  Layout two{{RankLayout{{LocalTensor{0, {{0, 0, 4, 0, 2}}, true}}},
              RankLayout{{LocalTensor{0, {{0, 0, 4, 0, 2}}, true}}}}};
  Layout half{{RankLayout{{LocalTensor{0, {{0, 0, 3, 0, 2}}, true}}}, RankLayout{}}};
  // A source held twice.
  auto dup = make_reshard_plan(two, one, ReshardMode::kAssign);
  ASSERT_FALSE(dup.is_ok());
  EXPECT_NE(dup.status().message().find("2 sources"), std::string::npos) << dup.status().message();
  // An element with no source: row 3 of the matrix.
  auto gap = make_reshard_plan(half, one, ReshardMode::kAssign);
  ASSERT_FALSE(gap.is_ok());
  EXPECT_NE(gap.status().message().find("element (3, 0) has no source"), std::string::npos)
      << gap.status().message();
  // Accumulate: an owned element no counting tensor sends.
  auto none = make_reshard_plan(half, one, ReshardMode::kAccumulate);
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("receives no gradient"), std::string::npos);
  Layout three{{RankLayout{}, RankLayout{}, RankLayout{}}};
  EXPECT_FALSE(make_reshard_plan(one, three, ReshardMode::kAssign).is_ok());
}

// Parameters optimizer → strategy equal the logical slices; gradients strategy → optimizer equal
// Σ over counting copies of (rank + 1)·logical gradient, computed by brute force.
void check_round_trip(const Strategy& os, const Strategy& run, const model::LlamaConfig& config) {
  SCOPED_TRACE(planner::format_strategy(os) + " <-> " + planner::format_strategy(run));
  std::vector<LogicalParam> params = logical_params(config);
  ProcessGrid os_grid = grid_of(os), run_grid = grid_of(run);
  ASSERT_TRUE(check_model_fits(config, run).is_ok()) << check_model_fits(config, run).message();
  auto opt = optimizer_layout(params, os_grid, config);
  ASSERT_TRUE(opt.is_ok()) << opt.status().message();
  Layout strat = strategy_layout(params, run_grid, config);

  auto propagate = make_reshard_plan(*opt, strat, ReshardMode::kAssign);
  ASSERT_TRUE(propagate.is_ok()) << propagate.status().message();
  std::vector<std::vector<std::vector<float>>> weights;
  execute_reshard(*propagate, *opt, strat, fill(*opt, logical_value), weights,
                  ReshardMode::kAssign);
  EXPECT_EQ(weights, fill(strat, logical_value));

  auto reduce = make_reshard_plan(strat, *opt, ReshardMode::kAccumulate);
  ASSERT_TRUE(reduce.is_ok()) << reduce.status().message();
  std::vector<std::vector<std::vector<float>>> grads = fill(strat, logical_value);
  std::vector<std::vector<double>> expected;  // logical sums
  for (const LogicalParam& p : params) expected.emplace_back(static_cast<size_t>(p.numel()), 0.0);
  for (size_t r = 0; r < strat.ranks.size(); ++r) {
    for (size_t t = 0; t < strat.ranks[r].tensors.size(); ++t) {
      const LocalTensor& lt = strat.ranks[r].tensors[t];
      size_t k = 0;
      for (const Block& b : lt.blocks) {
        const int64_t cols = params[static_cast<size_t>(b.param)].cols;
        for (int64_t i = b.row0; i < b.row1; ++i) {
          for (int64_t j = b.col0; j < b.col1; ++j, ++k) {
            if (!lt.counts_for_grad) {
              grads[r][t][k] = 1e6f;  // must never arrive
              continue;
            }
            grads[r][t][k] *= static_cast<float>(r + 1);
            expected[static_cast<size_t>(b.param)][static_cast<size_t>(i * cols + j)] +=
                double(r + 1) * logical_value(b.param, i, j);
          }
        }
      }
    }
  }
  std::vector<std::vector<std::vector<float>>> reduced;
  execute_reshard(*reduce, strat, *opt, grads, reduced, ReshardMode::kAccumulate);
  for (size_t r = 0; r < opt->ranks.size(); ++r) {
    for (size_t t = 0; t < opt->ranks[r].tensors.size(); ++t) {
      size_t k = 0;
      for (const Block& b : opt->ranks[r].tensors[t].blocks) {
        const int64_t cols = params[static_cast<size_t>(b.param)].cols;
        for (int64_t i = b.row0; i < b.row1; ++i) {
          for (int64_t j = b.col0; j < b.col1; ++j, ++k) {
            ASSERT_EQ(reduced[r][t][k],
                      expected[static_cast<size_t>(b.param)][static_cast<size_t>(i * cols + j)])
                << params[static_cast<size_t>(b.param)].name << " (" << i << ", " << j << ")";
          }
        }
      }
    }
  }
  // Volume sanity: every strategy element is written once; the optimizer layout holds one copy.
  int64_t strat_elements = 0, opt_elements = 0;
  for (const RankLayout& r : strat.ranks) strat_elements += r.numel();
  for (const RankLayout& r : opt->ranks) opt_elements += r.numel();
  EXPECT_EQ(propagate->elements_across_ranks() + propagate->elements_local(), strat_elements);
  int64_t logical = 0;
  for (const LogicalParam& p : params) logical += p.numel();
  EXPECT_EQ(opt_elements, logical);
}

TEST(Reshard, PropagationBetweenStrategiesOfEightRanks) {
  const std::vector<Strategy> strategies = {
      {{1, 8, 1}},
      {{1, 2, 2}, {1, 1, 2}, {1, 1, 1}, {1, 1, 1}},
      {{2, 1, 2}, {1, 2, 1}, {1, 1, 2}},
      {{1, 4, 2}},
      {{1, 2, 2}, {1, 2, 2}},
      {{4, 2, 1}},
      {{1, 1, 4}, {2, 1, 1}, {1, 2, 1}},
      Strategy(8, {1, 1, 1}),
  };
  for (model::LmHead head : {model::LmHead::kUntied, model::LmHead::kTied}) {
    model::LlamaConfig config = small_config(head);
    for (const Strategy& os : {strategies[0], strategies[3], strategies[4], strategies[7]}) {
      for (const Strategy& run : strategies) check_round_trip(os, run, config);
    }
  }
}

TEST(Reshard, RandomStrategies) {
  // Random heterogeneous strategies of 6 ranks against homogeneous optimizer layouts, with a
  // GQA config (kv heads 2) so tp ≤ 2, and 3 layers so pp 2 and 3 split unevenly.
  model::LlamaConfig config = small_config();
  config.num_layers = 3;
  config.num_kv_heads = 2;
  std::mt19937 rng(11);
  const std::vector<planner::Scheme> pool = {{1, 1, 1}, {1, 2, 1}, {2, 1, 1}, {1, 1, 2},
                                             {1, 2, 3}, {1, 1, 3}, {2, 1, 2}, {3, 2, 1}};
  const std::vector<Strategy> os_list = {{{1, 2, 3}},
                                         Strategy(6, {1, 1, 1}),
                                         {{1, 2, 1}, {1, 2, 1}, {1, 2, 1}},
                                         {{1, 1, 3}, {1, 1, 3}}};
  for (int trial = 0; trial < 24; ++trial) {
    Strategy run;
    int left = 6;
    while (left > 0) {
      const planner::Scheme& s = pool[rng() % pool.size()];
      if (s.gpus() <= left) {
        run.push_back(s);
        left -= s.gpus();
      }
    }
    config.lm_head = trial % 2 ? model::LmHead::kTied : model::LmHead::kUntied;
    check_round_trip(os_list[static_cast<size_t>(trial) % os_list.size()], run, config);
  }
}

TEST(Reshard, SameLayoutMovesNothing) {
  model::LlamaConfig config = small_config();
  std::vector<LogicalParam> params = logical_params(config);
  ProcessGrid grid = grid_of({{1, 4, 2}});
  Layout strat = strategy_layout(params, grid, config);
  auto opt = optimizer_layout(params, grid, config);
  ASSERT_TRUE(opt.is_ok());
  // One pipeline: the optimizer layout is the strategy layout with norms split over the TP group,
  // so only the norm weights cross ranks (tp − 1 of 4 parts for every rank's copy).
  auto plan = make_reshard_plan(*opt, strat, ReshardMode::kAssign);
  ASSERT_TRUE(plan.is_ok());
  int64_t norm_elements = 0;
  for (const LogicalParam& p : params) {
    if (p.kind == ShardKind::kReplicated) norm_elements += p.numel();
  }
  EXPECT_EQ(plan->elements_across_ranks(), norm_elements * 3);
}

}  // namespace
}  // namespace hydraulis::parallel
