// Fuzz target: `--batches F.json` (a JSON array of global batches, each an array of lengths).
// Property: parse gives batches or a clean Status; accepted batches are non-empty arrays of
// lengths >= 1 and survive a dump -> parse round trip. Regressions:
// tests/reliability/fuzz_regression_test.cpp.
#include "core/json.h"
#include "fuzz/fuzz_support.h"
#include "planner/simulate.h"

namespace hydraulis::fuzz {

int batches_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  auto batches = planner::parse_batches_json(as_text(data, size), "batches.json");
  if (!batches.is_ok()) {
    HYD_CHECK(!batches.status().message().empty(), "error Status without a message");
    return 0;
  }
  for (const std::vector<int64_t>& batch : *batches) {
    HYD_CHECK(!batch.empty(), "accepted an empty global batch");
    for (int64_t length : batch) HYD_CHECK(length >= 1, "accepted length {}", length);
  }
  const std::string text = core::Json(*batches).dump();
  auto reparsed = planner::parse_batches_json(text, "dumped.json");
  HYD_CHECK(reparsed.is_ok(), "dumped batches rejected: {}", reparsed.status().to_string());
  HYD_CHECK(*reparsed == *batches, "dump -> parse changed the batches");
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(batches_one_input)
