// Cost and memory model against values computed by hand from the 7b and 32b reference files
// (the arithmetic is in the comments; docs/planner.md walks through the first example).
#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

#include "planner_test_util.h"
#include "planner/cost_model.h"

namespace hydraulis::planner {
namespace {

SchemeSpace load(const std::string& model) { return test_util::load_reference_space(model); }

// 7b: H 4096, L 32, V 30592, B 210, alpha 0.75, A[tp2] 39, A[tp8] 48, bound 85198897152,
// safe_bound 6442450944, gap.node 5242880000. Optimizer layout (os_dp 8, os_tp 4, os_pp 1).
TEST(MemoryModel, Tp8Pp1Under7bLayout841) {
  SchemeSpace space = load("7b");
  OptimizerLayout layout{8, 4, 1};
  // (L/os_pp)(H²/os_tp)·B·(alpha/os_dp) = 32·4194304·210·0.09375   = 2642411520
  // (L/pp)(H²/tp)·B·(1−alpha)          = 32·2097152·210·0.25      = 3523215360
  // (H·V/os_tp)·e(1)·(alpha/os_dp)      = 31326208·32·0.09375      =   93978624
  // (H·V/tp)·e(1)·(1−alpha)             = 15663104·32·0.25         =  125304832
  //                                                        P total  = 6384910336
  EXPECT_DOUBLE_EQ(model_state_bytes(space, Scheme{1, 8, 1}, layout), 6384910336.0);
  // free = 85198897152 − 6442450944 − 6384910336 − 5242880000 = 67128655872
  // bytes per token = L·(H/tp)·A = 32·512·48 = 786432; 67128655872 / 786432 = 85358.5
  // floor → 85358, aligned down to 128 → 85248.
  auto tokens = max_tokens(space, Scheme{1, 8, 1}, layout);
  ASSERT_TRUE(tokens.is_ok()) << tokens.status().to_string();
  EXPECT_EQ(*tokens, 85248);
  // activation(1000) = 32·(1000·4096/8)·48 = 786432000
  EXPECT_DOUBLE_EQ(activation_bytes(space, Scheme{1, 8, 1}, 1000), 786432000.0);
  EXPECT_DOUBLE_EQ(predicted_memory_bytes(space, Scheme{1, 8, 1}, layout, 1000),
                   786432000.0 + 6384910336.0 + 5242880000.0);
}

TEST(MemoryModel, Tp2Pp4Under7bLayout841) {
  SchemeSpace space = load("7b");
  OptimizerLayout layout{8, 4, 1};
  // optimizer terms as above: 2642411520 + 93978624
  // (L/pp)(H²/tp)·B·(1−alpha) = 8·8388608·210·0.25 = 3523215360
  // (H·V/tp)·e(4)·(1−alpha)   = 62652416·16·0.25   =  250609664
  // P = 2642411520 + 3523215360 + 93978624 + 250609664 = 6510215168
  EXPECT_DOUBLE_EQ(model_state_bytes(space, Scheme{1, 2, 4}, layout), 6510215168.0);
  // free = 85198897152 − 6442450944 − 6510215168 − 5242880000 = 67003351040
  // bytes per token = 32·2048·39 = 2555904; 67003351040 / 2555904 = 26215.05 → 26215 → 26112
  auto tokens = max_tokens(space, Scheme{1, 2, 4}, layout);
  ASSERT_TRUE(tokens.is_ok());
  EXPECT_EQ(*tokens, 26112);
}

// 32b: H 6656 (H² 44302336), L 60, V 30592 (H·V 203620352), B 201, alpha 0.75, A[tp16] 50,
// A[tp4] 37, safe_bound 10737418240. Optimizer layout (64, 16, 1) of the planner test.
TEST(MemoryModel, Tp16Pp1AndTp4Pp4Under32bPlannerLayout) {
  SchemeSpace space = load("32b");
  OptimizerLayout layout{64, 16, 1};
  // (16,1): 60·2768896·201·(0.75/64) = 391322880; 60·2768896·201·0.25 = 8348221440;
  //         12726272·32·0.01171875 = 4772352;  12726272·32·0.25 = 101810176 → P 8846126848
  EXPECT_DOUBLE_EQ(model_state_bytes(space, Scheme{1, 16, 1}, layout), 8846126848.0);
  // free = 85198897152 − 10737418240 − 8846126848 − 5242880000 = 60372472064
  // per token 60·416·50 = 1248000 → 48375.37 → 48375 → 48256
  auto t16 = max_tokens(space, Scheme{1, 16, 1}, layout);
  ASSERT_TRUE(t16.is_ok());
  EXPECT_EQ(*t16, 48256);
  // (4,4): 391322880 + 15·11075584·201·0.25 (= 8348221440) + 4772352 + 50905088·16·0.25
  //        (= 203620352) → P 8947937024
  EXPECT_DOUBLE_EQ(model_state_bytes(space, Scheme{1, 4, 4}, layout), 8947937024.0);
  // free = 85198897152 − 10737418240 − 8947937024 − 5242880000 = 60270661888
  // per token 60·1664·37 = 3694080 → 16315.4 → 16315 → 16256
  auto t44 = max_tokens(space, Scheme{1, 4, 4}, layout);
  ASSERT_TRUE(t44.is_ok());
  EXPECT_EQ(*t44, 16256);
}

TEST(MemoryModel, HomogeneousVariantMatchesItsOwnLayout) {
  SchemeSpace space = load("7b");
  // dp 8 of (tp 4, pp 1): share alpha/8 + 1 − alpha = 0.34375
  // 32·4194304·210·0.34375 = 9688842240; 31326208·32·0.34375 = 344588288 → 10033430528
  EXPECT_DOUBLE_EQ(model_state_bytes_homogeneous(space, Scheme{1, 4, 1}, 8), 10033430528.0);
  EXPECT_DOUBLE_EQ(model_state_bytes(space, Scheme{1, 4, 1}, OptimizerLayout{8, 4, 1}),
                   10033430528.0);
}

TEST(MemoryModel, ContextParallelDividesTokensPerGpu) {
  SchemeSpace space = load("7b");
  space.add_scheme(SchemeCost{Scheme{2, 8, 1}, 2.5e-7, 0.02, 40.0});
  // Same model state as (1, 8, 1) (6384910336); each GPU holds half of the tokens:
  // floor(67128655872·2 / 786432) = 170717 → aligned 170624.
  auto tokens = max_tokens(space, Scheme{2, 8, 1}, OptimizerLayout{8, 4, 1});
  ASSERT_TRUE(tokens.is_ok());
  EXPECT_EQ(*tokens, 170624);
  EXPECT_DOUBLE_EQ(activation_bytes(space, Scheme{2, 8, 1}, 1000), 786432000.0 / 2);
}

TEST(MemoryModel, ModelStateThatDoesNotFitIsAnError) {
  SchemeSpace space = load("32b");
  // (1, 1, 2) under (1, 2, 1): the optimizer states alone are far beyond 80 GB.
  auto tokens = max_tokens(space, Scheme{1, 1, 2}, OptimizerLayout{1, 2, 1});
  ASSERT_FALSE(tokens.is_ok());
  EXPECT_EQ(tokens.status().code(), core::StatusCode::kResourceExhausted);
  EXPECT_NE(tokens.status().message().find("(1, 1, 2)"), std::string::npos);
  ClusterConfig small = space.cluster();
  small.gpu_memory_bound = 1e9;
  space.set_cluster(small);
  EXPECT_FALSE(max_tokens(space, Scheme{1, 16, 1}, OptimizerLayout{64, 16, 1}).is_ok());
  // A missing A entry is an error, not a crash.
  space.add_scheme(SchemeCost{Scheme{1, 32, 1}, 1e-7, 0.01, 1.0});
  EXPECT_FALSE(max_tokens(space, Scheme{1, 32, 1}, OptimizerLayout{64, 16, 1}).is_ok());
}

// 7b (tp 2, pp 4): a = 5.24734001e-07, b = 0.0249896203, c = 17.471602082128697.
TEST(CostModel, SequenceAndPipelineCost) {
  SchemeSpace space = load("7b");
  const SchemeCost* cost = space.find(Scheme{1, 2, 4});
  ASSERT_NE(cost, nullptr);
  // a·4096² + b·4096 = 5.24734001e-07·16777216 + 0.0249896203·4096 = 8.80357567 + 102.35748475
  EXPECT_NEAR(sequence_cost(*cost, 4096), 111.16106042612122, 1e-9);
  // cost(1000) = 0.524734001 + 24.9896203 = 25.514354301; cost(3000) = 4.722606009 + 74.9688609
  std::vector<int64_t> mb = {1000, 3000};
  EXPECT_NEAR(micro_batch_cost(*cost, mb), 25.514354301 + 79.691466909, 1e-9);
  // (max + c)·(pp − 1 + v) with v = 3: (111.16106 + 17.47160)·6 = 771.79597505
  EXPECT_NEAR(pipeline_time(*cost, sequence_cost(*cost, 4096), 3), 771.7959750494995, 1e-9);
  EXPECT_EQ(pipeline_time(*cost, 5.0, 0), 0.0);
}

TEST(CostModel, HistogramRangeCost) {
  SchemeSpace space = load("7b");
  const SchemeCost* cost = space.find(Scheme{1, 2, 4});
  ASSERT_NE(cost, nullptr);
  // counts {1000: 2, 3000: 1}: 2·(25.514354301 + c) + (79.691466909 + c) + (pp−1)·(79.69… + c)
  // = 2·42.985956383 + 4·97.163068991 = 474.6241887307722
  std::vector<int64_t> lengths = {1000, 3000};
  std::vector<double> counts = {2, 1};
  EXPECT_NEAR(histogram_range_cost(*cost, lengths, counts), 474.6241887307722, 1e-9);
  // No sequence: the original still charges the warm-up (pp − 1)·c.
  EXPECT_NEAR(histogram_range_cost(*cost, {}, {}), 3 * 17.471602082128697, 1e-12);
}

}  // namespace
}  // namespace hydraulis::planner
