// plan.jsonl form, round trip and the verifier (src/planner/plan.h).
#include "planner/plan.h"

#include <gtest/gtest.h>

namespace hydraulis::planner {
namespace {

SchemeCost cost(int tp, int pp, double a, double b, double c) {
  SchemeCost s;
  s.scheme = Scheme{1, tp, pp};
  s.a = a;
  s.b = b;
  s.c = c;
  return s;
}

// Batch lengths {100, 300, 200}; pipeline 0 (tp 2, pp 1; b = 1, c = 10) runs {1} and {0, 2};
// pipeline 1 (tp 2, pp 2; b = 2, c = 5) idles.
BatchPlan sample_plan() {
  BatchPlan plan;
  plan.batch = 3;
  plan.strategy = 1;
  plan.estimated_ms = (300 + 10) * 2.0;
  plan.lower_bound_ms = 310.5;
  plan.planning_ms = 0.25;
  PipelinePlan p0;
  p0.scheme = Scheme{1, 2, 1};
  p0.max_tokens = 400;
  p0.estimated_ms = 620;
  p0.micro_batches = {{1}, {0, 2}};
  PipelinePlan p1;
  p1.scheme = Scheme{1, 2, 2};
  p1.max_tokens = 300;
  p1.estimated_ms = 0;
  plan.pipelines = {p0, p1};
  return plan;
}

const std::vector<int64_t> kLengths = {100, 300, 200};
const std::vector<SchemeCost> kCosts = {cost(2, 1, 0, 1, 10), cost(2, 2, 0, 2, 5)};

TEST(PlanTest, JsonLineHasTheDesignForm) {
  EXPECT_EQ(plan_to_json_line(sample_plan()),
            "{\"batch\": 3, \"strategy\": 1, \"estimated_ms\": 620.0, \"lower_bound_ms\": 310.5, "
            "\"planning_ms\": 0.25, \"pipelines\": [{\"scheme\": [1, 2, 1], \"max_tokens\": 400, "
            "\"estimated_ms\": 620.0, \"micro_batches\": [[1], [0, 2]]}, {\"scheme\": [1, 2, 2], "
            "\"max_tokens\": 300, \"estimated_ms\": 0.0, \"micro_batches\": []}], \"method\": 4}");
}

TEST(PlanTest, JsonlRoundTrip) {
  BatchPlan a = sample_plan();
  BatchPlan b = sample_plan();
  b.batch = 4;
  b.method = 0;
  b.pad_tokens = 512;
  b.planning_ms = 1.0 / 3.0;
  std::string text = plan_to_json_line(a) + "\n\n" + plan_to_json_line(b) + "\n";
  auto plans = parse_plan_jsonl(text, "plan.jsonl");
  ASSERT_TRUE(plans.is_ok()) << plans.status().to_string();
  ASSERT_EQ(plans->size(), 2u);
  EXPECT_EQ(plan_to_json_line((*plans)[0]), plan_to_json_line(a));
  EXPECT_EQ(plan_to_json_line((*plans)[1]), plan_to_json_line(b));
  EXPECT_EQ((*plans)[1].pad_tokens, 512);
  EXPECT_EQ((*plans)[1].planning_ms, 1.0 / 3.0);  // shortest round-trip text is exact
  EXPECT_EQ((*plans)[0].pipelines[0].micro_batches, (std::vector<std::vector<int>>{{1}, {0, 2}}));
}

TEST(PlanTest, ParseErrorsNameTheLine) {
  std::string text = plan_to_json_line(sample_plan()) + "\n{\"batch\": 1, \"strategy\": 0\n";
  auto plans = parse_plan_jsonl(text, "p.jsonl");
  ASSERT_FALSE(plans.is_ok());
  EXPECT_NE(plans.status().message().find("p.jsonl:2"), std::string::npos)
      << plans.status().message();
  auto missing = parse_plan_jsonl("{\"batch\": 1}\n", "q.jsonl");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("'strategy' missing"), std::string::npos);
}

TEST(PlanTest, VerifierAcceptsAConsistentPlan) {
  core::Status s = verify_plan(sample_plan(), kLengths, kCosts);
  EXPECT_TRUE(s.is_ok()) << s.message();
  EXPECT_NEAR(sample_plan().gap(), 620 / 310.5 - 1, 1e-12);
}

TEST(PlanTest, VerifierRejectsBrokenPlans) {
  auto expect_error = [&](const BatchPlan& plan, const std::string& needle) {
    core::Status s = verify_plan(plan, kLengths, kCosts);
    ASSERT_FALSE(s.is_ok()) << "expected an error containing '" << needle << "'";
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  };
  BatchPlan twice = sample_plan();
  twice.pipelines[1].micro_batches = {{0}};
  twice.pipelines[1].estimated_ms = (200 + 5) * 2.0;
  expect_error(twice, "assigned 2 times");
  BatchPlan missing = sample_plan();
  missing.pipelines[0].micro_batches = {{1}, {2}};
  expect_error(missing, "assigned 0 times");
  BatchPlan over = sample_plan();
  over.pipelines[0].max_tokens = 350;
  over.pipelines[0].micro_batches = {{1, 0}, {2}};
  expect_error(over, "400 tokens > max_tokens 350");
  BatchPlan wrong = sample_plan();
  wrong.pipelines[0].estimated_ms = 600;
  expect_error(wrong, "spec.md §4 gives 620");
  BatchPlan bound = sample_plan();
  bound.lower_bound_ms = 700;
  expect_error(bound, "exceeds estimated_ms");
  BatchPlan outside = sample_plan();
  outside.pipelines[0].micro_batches = {{1}, {0, 7}};
  expect_error(outside, "index 7 outside");
  std::vector<SchemeCost> one = {kCosts[0]};
  EXPECT_FALSE(verify_plan(sample_plan(), kLengths, one).is_ok());
}

}  // namespace
}  // namespace hydraulis::planner
