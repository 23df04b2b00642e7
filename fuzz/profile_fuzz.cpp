// Fuzz target: the profile JSON of `hydraulis profile` (docs/formats.md, "Profile JSON").
// Property: parse + from_json give a profile or a clean Status; an accepted profile survives
// to_json -> from_json -> to_json unchanged; build-space's fit of it (both weightings) ends in a
// scheme space that passes its own from_json, or in a Status, without undefined behaviour.
// Regressions: tests/reliability/fuzz_regression_test.cpp.
#include "core/json.h"
#include "fuzz/fuzz_support.h"
#include "planner/profile.h"
#include "planner/space_fit.h"

namespace hydraulis::fuzz {

int profile_one_input(const uint8_t* data, size_t size) {
  quiet_logs();
  auto json = core::parse_json(as_text(data, size), "profile.json");
  if (!json.is_ok()) return 0;
  auto profile = planner::Profile::from_json(*json, "profile.json");
  if (!profile.is_ok()) {
    HYD_CHECK(!profile.status().message().empty(), "error Status without a message");
    return 0;
  }
  const core::Json written = profile->to_json();
  auto reread = planner::Profile::from_json(written, "written.json");
  HYD_CHECK(reread.is_ok(), "to_json output is rejected by from_json: {}",
            reread.status().to_string());
  HYD_CHECK(reread->to_json() == written, "to_json -> from_json -> to_json changed the profile");
  for (planner::FitWeighting w : {planner::FitWeighting::kUniform, planner::FitWeighting::kRelative}) {
    planner::SpaceFitOptions options;
    options.weighting = w;
    const planner::NamedProfile named{"profile.json", *profile};
    auto fit = planner::fit_scheme_space(std::span<const planner::NamedProfile>(&named, 1), options);
    if (!fit.is_ok()) {
      HYD_CHECK(!fit.status().message().empty(), "error Status without a message");
      continue;
    }
    auto space = planner::SchemeSpace::from_json(fit->space.to_json(), "space.json");
    HYD_CHECK(space.is_ok(), "build-space wrote a space its reader refuses: {}",
              space.status().to_string());
    (void)planner::format_fit_report(*fit);
  }
  return 0;
}

}  // namespace hydraulis::fuzz

HYD_FUZZ_TARGET(profile_one_input)
