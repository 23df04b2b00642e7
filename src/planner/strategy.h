// Strategy lists: parsing/printing the original text syntax `[[(cp, tp, pp), ...], ...]`
// (pairs `(tp, pp)` mean cp = 1) and validation against a scheme space and a GPU count
// (spec.md §6). Tests: tests/planner/strategy_test.cpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "planner/cost_model.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {

// A strategy: its pipelines (data-parallel replicas, each with its own scheme) in list order.
using Strategy = std::vector<Scheme>;

// Parses the text form; errors quote the text and point at the offending column with a caret.
core::StatusOr<std::vector<Strategy>> parse_strategy_list(std::string_view text);
// "[[(1, 16, 1), (1, 8, 3)], [...]]"
std::string format_strategy_list(const std::vector<Strategy>& strategies);
std::string format_strategy(const Strategy& strategy);
// Compact form for logs: "64x(1,16,1)" / "1x(1,16,1)+3x(1,8,1)".
std::string summarize_strategy(const Strategy& strategy);

int strategy_gpus(const Strategy& strategy);

// Every strategy uses exactly num_gpus GPUs, every scheme exists in the space, the first strategy
// is homogeneous (it defines the optimizer layout), and no scheme is empty/non-positive.
core::Status validate_strategy_list(const std::vector<Strategy>& strategies,
                                    const SchemeSpace& space, int num_gpus);

// os_dp = N / (tp·pp) of the first (homogeneous) strategy; os_tp, os_pp its tp, pp.
OptimizerLayout optimizer_layout(const std::vector<Strategy>& strategies);

}  // namespace hydraulis::planner
