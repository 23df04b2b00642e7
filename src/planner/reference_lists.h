// The strategy lists of the original Hydraulis reference runs (spec.md §9), as text in the
// original (tp, pp) syntax: shared by the planner benchmark, tests and docs so there is one copy.
#pragma once

#include <string>

namespace hydraulis::planner {

// 64-GPU case study, 32B: the 7-strategy list of the original README (lhy101/Hydraulis, README.md
// §6, MULTI_TP_PP_LIST).
std::string case_study_strategy_list();

// 1,024-GPU planner test, 32B: [64×(16,1)] and [1×(16,1), 3×(8,1), 238×(4,1), 2×(4,4)].
std::string planner_test_strategy_list();

}  // namespace hydraulis::planner
