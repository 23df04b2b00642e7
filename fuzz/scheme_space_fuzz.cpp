// Fuzz target: scheme-space JSON (spec.md §3 schema). Property: parse + from_json give a space or
// a clean Status; an accepted space survives to_json -> from_json -> to_json unchanged, and the
// memory model (max_tokens, predicted memory) answers for every scheme without undefined
// behaviour. Regressions: tests/reliability/fuzz_regression_test.cpp.
#include "core/json.h"
#include "fuzz/fuzz_support.h"
#include "planner/cost_model.h"
#include "planner/scheme_space.h"

namespace hydraulis::fuzz {

int scheme_space_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  auto json = core::parse_json(as_text(data, size), "space.json");
  if (!json.is_ok()) return 0;
  auto space = planner::SchemeSpace::from_json(*json, "space.json");
  if (!space.is_ok()) {
    HYD_CHECK(!space.status().message().empty(), "error Status without a message");
    return 0;
  }
  const core::Json written = space->to_json();
  auto reread = planner::SchemeSpace::from_json(written, "written.json");
  HYD_CHECK(reread.is_ok(), "to_json output is rejected by from_json: {}",
            reread.status().to_string());
  HYD_CHECK(reread->to_json() == written, "to_json -> from_json -> to_json changed the space");
  for (const planner::SchemeCost& cost : space->schemes()) {
    const planner::Scheme& s = cost.scheme;
    HYD_CHECK(space->find(s) != nullptr, "scheme {} listed but not found", s.to_string());
    const planner::OptimizerLayout layout{1, s.tp, s.pp};
    auto tokens = planner::max_tokens(*space, s, layout);
    if (tokens.is_ok()) HYD_CHECK(*tokens >= 0, "max_tokens {} < 0", *tokens);
    (void)planner::predicted_memory_bytes(*space, s, layout, 4096);
    (void)planner::model_state_bytes_homogeneous(*space, s, 2);
  }
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(scheme_space_one_input)
