// ProcessGrid placement, groups and errors; check_model_fits; the balanced layer split.
#include "parallel/process_grid.h"

#include <gtest/gtest.h>

#include "parallel/layer_split.h"

namespace hydraulis::parallel {
namespace {

using planner::Scheme;
using planner::Strategy;

ProcessGrid make_grid(const Strategy& strategy, int world) {
  auto grid = ProcessGrid::create(strategy, world);
  EXPECT_TRUE(grid.is_ok()) << grid.status().message();
  return std::move(grid).value();
}

TEST(ProcessGrid, TwoPipelinesOnFourRanks) {
  ProcessGrid grid = make_grid({{1, 2, 1}, {1, 1, 2}}, 4);
  EXPECT_EQ(grid.num_pipelines(), 2);
  EXPECT_EQ(grid.first_rank(0), 0);
  EXPECT_EQ(grid.first_rank(1), 2);
  EXPECT_EQ(grid.coord(0), (RankCoord{0, 0, 0, 0}));
  EXPECT_EQ(grid.coord(1), (RankCoord{0, 0, 0, 1}));
  EXPECT_EQ(grid.coord(2), (RankCoord{1, 0, 0, 0}));
  EXPECT_EQ(grid.coord(3), (RankCoord{1, 1, 0, 0}));
  EXPECT_EQ(grid.tp_group(0, 0, 0), (std::vector<int>{0, 1}));
  EXPECT_EQ(grid.stage_ranks(1, 1), (std::vector<int>{3}));
  EXPECT_FALSE(grid.homogeneous());
}

TEST(ProcessGrid, CpAndTpInsideAStage) {
  // [(1, 2, 1), (2, 1, 2)] on 6 ranks (docs/parallel.md's example), then (2, 2, 2) on 8.
  ProcessGrid grid = make_grid({{1, 2, 1}, {2, 1, 2}}, 6);
  EXPECT_EQ(grid.coord(2), (RankCoord{1, 0, 0, 0}));
  EXPECT_EQ(grid.coord(3), (RankCoord{1, 0, 1, 0}));
  EXPECT_EQ(grid.coord(4), (RankCoord{1, 1, 0, 0}));
  EXPECT_EQ(grid.coord(5), (RankCoord{1, 1, 1, 0}));
  EXPECT_EQ(grid.cp_group(1, 1, 0), (std::vector<int>{4, 5}));

  ProcessGrid g8 = make_grid({{2, 2, 2}}, 8);
  // rank = stage·4 + cp·2 + tp
  EXPECT_EQ(g8.coord(6), (RankCoord{0, 1, 1, 0}));
  EXPECT_EQ(g8.tp_group(0, 1, 1), (std::vector<int>{6, 7}));
  EXPECT_EQ(g8.cp_group(0, 1, 1), (std::vector<int>{5, 7}));
  EXPECT_EQ(g8.stage_ranks(0, 1), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_TRUE(g8.homogeneous());
}

TEST(ProcessGrid, CoordAndRankOfAreInverse) {
  ProcessGrid grid = make_grid({{2, 1, 2}, {1, 2, 1}, {1, 1, 2}, {1, 4, 1}, {2, 2, 1}}, 16);
  for (int r = 0; r < grid.world_size(); ++r) {
    RankCoord c = grid.coord(r);
    EXPECT_EQ(grid.rank_of(c), r);
    const Scheme& s = grid.scheme(c.pipeline);
    EXPECT_GE(r, grid.first_rank(c.pipeline));
    EXPECT_LT(r, grid.end_rank(c.pipeline));
    EXPECT_LT(c.stage, s.pp);
  }
  EXPECT_EQ(grid.coord(15), (RankCoord{4, 0, 1, 1}));
}

TEST(ProcessGrid, Errors) {
  auto wrong = ProcessGrid::create({{1, 2, 1}, {1, 1, 2}}, 8);
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_NE(wrong.status().message().find("uses 4 GPUs"), std::string::npos);
  EXPECT_NE(wrong.status().message().find("8 ranks"), std::string::npos);
  EXPECT_FALSE(ProcessGrid::create({}, 1).is_ok());
  EXPECT_FALSE(ProcessGrid::create({{0, 1, 1}}, 0).is_ok());
}

TEST(ProcessGrid, Describe) {
  ProcessGrid grid = make_grid({{1, 2, 1}, {2, 1, 2}}, 6);
  EXPECT_EQ(grid.describe(),
            "6 ranks, 2 pipelines\n"
            "pipeline 0 (1, 2, 1): ranks 0-1\n"
            "  stage 0: cp 0: tp ranks [0, 1]\n"
            "pipeline 1 (2, 1, 2): ranks 2-5\n"
            "  stage 0: cp 0: tp ranks [2]; cp 1: tp ranks [3]\n"
            "  stage 1: cp 0: tp ranks [4]; cp 1: tp ranks [5]\n");
}

TEST(CheckModelFits, NamesTheFactor) {
  model::LlamaConfig config;
  config.num_layers = 4;
  config.hidden = 64;
  config.num_heads = 8;
  config.num_kv_heads = 2;
  config.ffn_hidden = 96;
  config.vocab_size = 128;
  EXPECT_TRUE(check_model_fits(config, {{1, 2, 4}, {2, 1, 2}}).is_ok());
  core::Status kv = check_model_fits(config, {{1, 2, 1}, {1, 4, 2}});
  ASSERT_FALSE(kv.is_ok());
  EXPECT_EQ(kv.message(),
            "num_kv_heads 2 is not divisible by tp 4 of pipeline 1 (1, 4, 2): use tp <= 2 or a "
            "model with more kv heads");
  config.num_kv_heads = 8;
  config.ffn_hidden = 100;
  core::Status ffn = check_model_fits(config, {{1, 8, 1}});
  ASSERT_FALSE(ffn.is_ok());
  EXPECT_NE(ffn.message().find("ffn_hidden 100 is not divisible by tp 8"), std::string::npos);
  EXPECT_NE(ffn.message().find("use tp <= 5"), std::string::npos);
  config.ffn_hidden = 96;
  config.vocab_size = 100;
  EXPECT_NE(check_model_fits(config, {{1, 8, 1}}).message().find("vocab_size"), std::string::npos);
  config.vocab_size = 128;
  core::Status layers = check_model_fits(config, {{1, 1, 5}});
  ASSERT_FALSE(layers.is_ok());
  EXPECT_NE(layers.message().find("num_layers 4 is smaller than pp 5"), std::string::npos);
}

TEST(LayerSplit, BalancedUneven) {
  EXPECT_EQ(split_layers(32, 3), (std::vector<int64_t>{11, 11, 10}));
  EXPECT_EQ(split_layers(32, 4), (std::vector<int64_t>{8, 8, 8, 8}));
  EXPECT_EQ(split_layers(10, 4), (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(split_layers(2, 3), (std::vector<int64_t>{1, 1, 0}));
  EXPECT_EQ(split_layers(7, 1), (std::vector<int64_t>{7}));
  EXPECT_EQ(first_layer(32, 3, 0), 0);
  EXPECT_EQ(first_layer(32, 3, 1), 11);
  EXPECT_EQ(first_layer(32, 3, 2), 22);
  EXPECT_EQ(end_layer(32, 3, 2), 32);
  EXPECT_EQ(stage_of_layer(32, 3, 10), 0);
  EXPECT_EQ(stage_of_layer(32, 3, 11), 1);
  EXPECT_EQ(stage_of_layer(32, 3, 31), 2);
}

TEST(LayerSplit, StageOfLayerMatchesRanges) {
  for (int64_t layers = 1; layers <= 40; ++layers) {
    for (int pp = 1; pp <= layers && pp <= 9; ++pp) {
      std::vector<int64_t> sizes = split_layers(layers, pp);
      int64_t total = 0;
      for (int s = 0; s < pp; ++s) {
        EXPECT_EQ(first_layer(layers, pp, s), total);
        EXPECT_LE(sizes[0] - sizes[static_cast<size_t>(s)], 1);
        for (int64_t l = total; l < total + sizes[static_cast<size_t>(s)]; ++l) {
          EXPECT_EQ(stage_of_layer(layers, pp, l), s) << layers << " layers, pp " << pp;
        }
        total += sizes[static_cast<size_t>(s)];
      }
      EXPECT_EQ(total, layers);
    }
  }
}

}  // namespace
}  // namespace hydraulis::parallel
