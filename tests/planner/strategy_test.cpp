// Strategy-list syntax (both tuple forms, whitespace, caret errors), printing, summaries and the
// validation rules of spec.md §6 against the 32b reference scheme space.
#include <fmt/ranges.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "planner_test_util.h"
#include "planner/strategy.h"
#include "planner/reference_lists.h"

namespace hydraulis::planner {
namespace {

SchemeSpace load(const std::string& model) { return test_util::load_reference_space(model); }

Strategy repeat(int n, Scheme s) {
  return Strategy(n, s);
}

Strategy concat(std::initializer_list<Strategy> parts) {
  Strategy out;
  for (const Strategy& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(StrategyList, ParsesTriples) {
  auto list = parse_strategy_list("[[(1, 16, 1), (1, 8, 3)], [(2, 4, 2)]]");
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0], (Strategy{{1, 16, 1}, {1, 8, 3}}));
  EXPECT_EQ((*list)[1], (Strategy{{2, 4, 2}}));
}

TEST(StrategyList, ParsesPairsAsCp1AndToleratesWhitespace) {
  auto list = parse_strategy_list("  [ [ (16,1),(8 ,1) ,\n\t(4, 4) ] ,[(4,1),] , ]  ");
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0], (Strategy{{1, 16, 1}, {1, 8, 1}, {1, 4, 4}}));
  EXPECT_EQ((*list)[1], (Strategy{{1, 4, 1}}));
  auto mixed = parse_strategy_list("[[(8, 1), (1, 4, 2)]]");
  ASSERT_TRUE(mixed.is_ok());
  EXPECT_EQ((*mixed)[0], (Strategy{{1, 8, 1}, {1, 4, 2}}));
}

// Expects an error naming `what` at `column` (1-based) with a caret under that column.
void expect_parse_error(const std::string& text, const std::string& what, size_t column) {
  auto list = parse_strategy_list(text);
  ASSERT_FALSE(list.is_ok()) << text;
  const std::string& msg = list.status().message();
  EXPECT_NE(msg.find(what), std::string::npos) << msg;
  EXPECT_NE(msg.find(fmt::format("at column {}", column)), std::string::npos) << msg;
  EXPECT_NE(msg.find(text), std::string::npos) << msg;  // the text is quoted
  // The caret line: two spaces of indent, then column − 1 spaces.
  std::string caret = "\n  " + std::string(column - 1, ' ') + "^";
  EXPECT_NE(msg.find(caret), std::string::npos) << msg;
}

TEST(StrategyList, ErrorsPointAtTheColumn) {
  expect_parse_error("[[(1, 16, 1, 2)]]", "expected ')'", 14);
  expect_parse_error("[[(1, 16 1)]]", "expected ',' or ')'", 10);
  expect_parse_error("[[(1, 16, 1)] [(2, 2)]]", "expected ',' or ']'", 15);
  expect_parse_error("[(1, 2)]", "expected '[' to start a strategy", 2);
  expect_parse_error("[[(1, x)]]", "expected an integer", 7);
  expect_parse_error("[[(4)]]", "2 degrees", 5);
  expect_parse_error("[[]]", "at least one scheme", 3);
  expect_parse_error("[]", "no strategy", 2);
  expect_parse_error("[[(1, 2)]] x", "unexpected text", 12);
  expect_parse_error("[[(1, 2)]", "expected ',' or ']'", 10);
  expect_parse_error("(1, 2)", "expected '['", 1);
  auto empty = parse_strategy_list("   ");
  ASSERT_FALSE(empty.is_ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
}

TEST(StrategyList, FormatsAndSummarizes) {
  std::vector<Strategy> list = {repeat(2, {1, 16, 1}),
                                concat({repeat(1, {1, 16, 1}), repeat(3, {1, 8, 1})})};
  std::string text = format_strategy_list(list);
  EXPECT_EQ(text, "[[(1, 16, 1), (1, 16, 1)], [(1, 16, 1), (1, 8, 1), (1, 8, 1), (1, 8, 1)]]");
  auto back = parse_strategy_list(text);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, list);
  EXPECT_EQ(format_strategy(list[1]), "[(1, 16, 1), (1, 8, 1), (1, 8, 1), (1, 8, 1)]");
  EXPECT_EQ(summarize_strategy(repeat(64, {1, 16, 1})), "64x(1,16,1)");
  EXPECT_EQ(summarize_strategy(list[1]), "1x(1,16,1)+3x(1,8,1)");
  EXPECT_EQ(strategy_gpus(list[1]), 40);
}

// The planner test of the original (spec.md §9): 1,024 GPUs, 32b scheme space.
TEST(StrategyList, ValidatesThePlannerTestList) {
  SchemeSpace space = load("32b");
  auto list = parse_strategy_list(
      fmt::format("[[{}], [{}]]", fmt::join(std::vector<std::string>(64, "(16, 1)"), ", "),
                  "(16, 1), (8, 1), (8, 1), (8, 1), " +
                      fmt::format("{}", fmt::join(std::vector<std::string>(238, "(4, 1)"), ", ")) +
                      ", (4, 4), (4, 4)"));
  ASSERT_TRUE(list.is_ok()) << list.status().to_string();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ(summarize_strategy((*list)[1]), "1x(1,16,1)+3x(1,8,1)+238x(1,4,1)+2x(1,4,4)");
  // The shared copy used by the benchmark is the same list.
  EXPECT_EQ(parse_strategy_list(planner_test_strategy_list()).value(), *list);
  // 16 + 3·8 + 238·4 + 2·16 = 1024
  EXPECT_EQ(strategy_gpus((*list)[1]), 1024);
  core::Status ok = validate_strategy_list(*list, space, 1024);
  EXPECT_TRUE(ok.is_ok()) << ok.to_string();
  OptimizerLayout layout = optimizer_layout(*list);
  EXPECT_EQ(layout.dp, 64);
  EXPECT_EQ(layout.tp, 16);
  EXPECT_EQ(layout.pp, 1);
}

void expect_invalid(const std::vector<Strategy>& list, int gpus, std::vector<std::string> needles) {
  SchemeSpace space = load("32b");
  core::Status status = validate_strategy_list(list, space, gpus);
  ASSERT_FALSE(status.is_ok()) << needles.front();
  for (const std::string& needle : needles) {
    EXPECT_NE(status.message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << status.message();
  }
}

TEST(StrategyList, ValidationErrors) {
  expect_invalid({}, 32, {"empty"});
  expect_invalid({repeat(2, {1, 16, 1}), concat({repeat(1, {1, 16, 1}), repeat(1, {1, 8, 1})})}, 32,
                 {"strategy 1", "1x(1,16,1)+1x(1,8,1)", "uses 24 GPUs", "exactly 32"});
  expect_invalid({repeat(2, {1, 16, 1}), concat({repeat(1, {1, 16, 1}), repeat(1, {1, 16, 2})})},
                 32, {"strategy 1, pipeline 1", "(1, 16, 2)", "not in the scheme space"});
  expect_invalid({concat({repeat(1, {1, 16, 1}), repeat(2, {1, 8, 1})})}, 32,
                 {"strategy 0", "homogeneous", "pipeline 1 is (1, 8, 1)"});
  expect_invalid({repeat(2, {1, 16, 1}), {Scheme{1, 0, 1}, Scheme{1, 16, 1}}}, 32,
                 {"strategy 1, pipeline 0", "non-positive"});
  expect_invalid({repeat(2, {1, 16, 1}), Strategy{}}, 32, {"strategy 1 has no pipeline"});
  // (1, 1, 2) cannot hold its model state under the optimizer layout (16, 1, 2).
  expect_invalid({repeat(16, {1, 1, 2})}, 32, {"strategy 0, pipeline 0", "does not fit"});
  expect_invalid({repeat(2, {1, 16, 1})}, 0, {"--num-gpus"});
}

TEST(StrategyList, OptimizerLayoutOfFirstStrategy) {
  // 8 pipelines of (cp 1, tp 4, pp 2) on 64 GPUs: os_dp = 64 / (4·2) = 8.
  EXPECT_EQ(optimizer_layout({repeat(8, {1, 4, 2})}).dp, 8);
  // With cp 2 the optimizer states are sharded over dp·cp: 64 / (4·1) = 16.
  OptimizerLayout cp = optimizer_layout({repeat(8, {2, 4, 1})});
  EXPECT_EQ(cp.dp, 16);
  EXPECT_EQ(cp.tp, 4);
  EXPECT_EQ(cp.pp, 1);
}

}  // namespace
}  // namespace hydraulis::planner
