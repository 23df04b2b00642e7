// Fuzz target: plan.jsonl (design.md: one line per global batch). Property: parse gives plans or
// a clean Status; every accepted plan's line, written back with plan_to_json_line, parses to the
// same line again. Regressions: tests/reliability/fuzz_regression_test.cpp.
#include "fuzz/fuzz_support.h"
#include "planner/plan.h"

namespace hydraulis::fuzz {

int plan_jsonl_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  auto plans = planner::parse_plan_jsonl(as_text(data, size), "plan.jsonl");
  if (!plans.is_ok()) {
    HYD_CHECK(!plans.status().message().empty(), "error Status without a message");
    return 0;
  }
  std::string text;
  for (const planner::BatchPlan& plan : *plans) {
    (void)plan.gap();
    text += planner::plan_to_json_line(plan);
    text += '\n';
  }
  auto reparsed = planner::parse_plan_jsonl(text, "written.jsonl");
  HYD_CHECK(reparsed.is_ok(), "written plans rejected: {}", reparsed.status().to_string());
  HYD_CHECK(reparsed->size() == plans->size(), "{} plans written, {} read", plans->size(),
            reparsed->size());
  std::string again;
  for (const planner::BatchPlan& plan : *reparsed) {
    again += planner::plan_to_json_line(plan);
    again += '\n';
  }
  HYD_CHECK(again == text, "plan_to_json_line -> parse -> plan_to_json_line is not stable");
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(plan_jsonl_one_input)
