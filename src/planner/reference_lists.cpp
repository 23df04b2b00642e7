// Text of the reference strategy lists (see reference_lists.h).
#include "planner/reference_lists.h"

namespace hydraulis::planner {

namespace {

// "(tp, pp), (tp, pp), ..." with `count` copies, appended to `out` after a separator if needed.
void append_copies(std::string& out, const char* scheme, int count) {
  for (int i = 0; i < count; ++i) out += std::string(out.empty() ? "" : ", ") + scheme;
}

}  // namespace

std::string case_study_strategy_list() {
  return "[[(16, 1), (16, 1), (16, 1), (16, 1)], [(16, 1), (8, 3), (8, 3)], "
         "[(16, 1), (8, 1), (8, 1), (8, 1), (8, 1), (8, 1), (8, 1)], "
         "[(16, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), "
         "(4, 1), (4, 1), (4, 1)], [(8, 3), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), "
         "(4, 1), (4, 1), (4, 1), (4, 1)], [(8, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), "
         "(4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1), (4, 1)], "
         "[(4, 2), (4, 2), (4, 2), (4, 2), (4, 2), (4, 2), (4, 2), (4, 2)]]";
}

std::string planner_test_strategy_list() {
  std::string homogeneous, hetero;
  append_copies(homogeneous, "(16, 1)", 64);
  append_copies(hetero, "(16, 1)", 1);
  append_copies(hetero, "(8, 1)", 3);
  append_copies(hetero, "(4, 1)", 238);
  append_copies(hetero, "(4, 4)", 2);
  return "[[" + homogeneous + "], [" + hetero + "]]";
}

}  // namespace hydraulis::planner
