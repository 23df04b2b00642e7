// Fuzz target: strategy-list text `[[(cp, tp, pp), ...], ...]`. Property: parse gives a list or a
// clean Status with a caret message; an accepted list round-trips parse -> format -> parse
// unchanged and formats the same twice. Regressions: tests/reliability/fuzz_regression_test.cpp.
#include "fuzz/fuzz_support.h"
#include "planner/strategy.h"

namespace hydraulis::fuzz {

int strategy_list_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  auto parsed = planner::parse_strategy_list(as_text(data, size));
  if (!parsed.is_ok()) {
    HYD_CHECK(!parsed.status().message().empty(), "error Status without a message");
    return 0;
  }
  const std::string text = planner::format_strategy_list(*parsed);
  auto reparsed = planner::parse_strategy_list(text);
  HYD_CHECK(reparsed.is_ok(), "formatted list \"{}\" does not parse: {}", text,
            reparsed.status().to_string());
  HYD_CHECK(*reparsed == *parsed, "parse(format(x)) != x for \"{}\"", text);
  HYD_CHECK(planner::format_strategy_list(*reparsed) == text, "format is not stable: \"{}\"", text);
  for (const planner::Strategy& strategy : *parsed) {
    (void)planner::summarize_strategy(strategy);
    (void)planner::strategy_gpus(strategy);
  }
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(strategy_list_one_input)
