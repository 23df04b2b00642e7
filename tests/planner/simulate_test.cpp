// --batches reader and the simulation over many batches (src/planner/simulate.h).
#include "planner/simulate.h"

#include <gtest/gtest.h>

#include "exhaustive.h"

namespace hydraulis::planner {
namespace {

TEST(BatchesJsonTest, ParsesBatches) {
  auto b = parse_batches_json("[[3, 1, 2], [7]]", "b.json");
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(*b, (std::vector<std::vector<int64_t>>{{3, 1, 2}, {7}}));
}

TEST(BatchesJsonTest, ErrorsNamePositions) {
  auto malformed = parse_batches_json("[[1, 2],\n [3, ]]", "b.json");
  ASSERT_FALSE(malformed.is_ok());
  EXPECT_NE(malformed.status().message().find("b.json:2:"), std::string::npos)
      << malformed.status().message();
  auto negative = parse_batches_json("[[1, 2], [3, -4]]", "b.json");
  ASSERT_FALSE(negative.is_ok());
  EXPECT_NE(negative.status().message().find("batch 1, element 1 is -4"), std::string::npos)
      << negative.status().message();
  auto zero = parse_batches_json("[[0]]", "b.json");
  EXPECT_FALSE(zero.is_ok());
  EXPECT_FALSE(parse_batches_json("[[1], []]", "b.json").is_ok());
  EXPECT_FALSE(parse_batches_json("{}", "b.json").is_ok());
  EXPECT_FALSE(parse_batches_json("[[1.5]]", "b.json").is_ok());
}

TEST(SimulateTest, ComparesMethodsAndHomogeneousBaselines) {
  using testing::make_pipeline;
  // Strategy 0: two (1, 2, 1) pipelines with a 1,000-token cap; strategy 1: one (1, 4, 1) pipeline
  // holding 4,000 tokens. b = 1 ms/token, c = 10 ms.
  StrategyModel s0{{Scheme{1, 2, 1}, Scheme{1, 2, 1}},
                   {make_pipeline(2, 1, 0, 1, 10, 1000), make_pipeline(2, 1, 0, 1, 10, 1000)}};
  StrategyModel s1{{Scheme{1, 4, 1}}, {make_pipeline(4, 1, 0, 0.5, 10, 4000)}};
  std::vector<StrategyModel> strategies = {s0, s1};
  std::vector<std::vector<int64_t>> batches = {{500, 500}, {3000, 100}};
  SimulationOptions options;
  options.max_seq_len = 1000;
  auto report = simulate_batches(batches, strategies, options);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_EQ(report->batch_tokens, (std::vector<int64_t>{1000, 3100}));
  // Runs: method 0, 1, 3, 4 and the two homogeneous strategies alone.
  ASSERT_EQ(report->runs.size(), 6u);
  const SimulationRun& m4 = report->runs[3];
  EXPECT_EQ(m4.name, "method 4 (ours)");
  EXPECT_EQ(m4.failed_batches, 0);
  // Batch 0: one sequence per (2,1) pipeline: 500 + 10; on strategy 1: 500 + 10 too; the tie
  // goes to the better lower bound, both 510.
  EXPECT_DOUBLE_EQ(m4.step_ms[0], 510);
  // Batch 1: only strategy 1 holds 3,000 tokens: 0.5·3100 + 10.
  EXPECT_DOUBLE_EQ(m4.step_ms[1], 1560);
  EXPECT_EQ(m4.strategy[1], 1);
  // Method 0 pads to --max-seq-len on strategy 0 and cannot hold 3,000 tokens.
  EXPECT_EQ(report->runs[0].failed_batches, 1);
  EXPECT_DOUBLE_EQ(report->runs[0].step_ms[0], 1010);
  // Homogeneous strategy 0 alone fails batch 1; strategy 1 alone plans both.
  EXPECT_EQ(report->runs[4].failed_batches, 1);
  EXPECT_EQ(report->runs[5].failed_batches, 0);
  EXPECT_NEAR(m4.tokens_per_s(), 4100.0 / (510 + 1560) * 1000, 1e-9);
  core::Json json = simulation_to_json(*report, strategies);
  EXPECT_EQ(json["runs"].size(), 6u);
  EXPECT_TRUE(json["runs"][0]["step_ms"][1].is_null());
}

}  // namespace
}  // namespace hydraulis::planner
