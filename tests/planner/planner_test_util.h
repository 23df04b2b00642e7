// Helpers shared by the planner tests: loading a reference scheme space from configs/.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "planner/scheme_space.h"

namespace hydraulis::planner::test_util {

// configs/scheme_space/parallel_scheme_space_<model>.json (model: 7b, 13b, 32b).
inline SchemeSpace load_reference_space(const std::string& model) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  auto space = SchemeSpace::load(fmt::format(
      "{}/configs/scheme_space/parallel_scheme_space_{}.json", root ? root : ".", model));
  EXPECT_TRUE(space.is_ok()) << space.status().to_string();
  return *space;
}

}  // namespace hydraulis::planner::test_util
