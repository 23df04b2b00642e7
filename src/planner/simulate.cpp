// Simulation over many global batches and the --batches reader (see simulate.h).
#include "planner/simulate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/file.h"

namespace hydraulis::planner {

core::StatusOr<std::vector<std::vector<int64_t>>> parse_batches_json(std::string_view text,
                                                                     const std::string& source) {
  HYD_ASSIGN_OR_RETURN(core::Json json, core::parse_json(text, source));
  if (!json.is_array() || json.empty()) {
    return core::invalid_argument(
        "{}: expected a non-empty JSON array of global batches (each an array of sequence "
        "lengths), got {}",
        source, json.is_array() ? "an empty array" : json.type_name());
  }
  std::vector<std::vector<int64_t>> batches;
  batches.reserve(json.size());
  for (size_t b = 0; b < json.size(); ++b) {
    const core::Json& batch = json[b];
    if (!batch.is_array() || batch.empty()) {
      return core::invalid_argument("{}: batch {} must be a non-empty array of lengths, got {}",
                                    source, b, batch.dump().substr(0, 80));
    }
    std::vector<int64_t> lengths;
    lengths.reserve(batch.size());
    for (size_t k = 0; k < batch.size(); ++k) {
      const core::Json& v = batch[k];
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
        return core::invalid_argument(
            "{}: batch {}, element {} is {}; every length must be an integer >= 1", source, b, k,
            v.dump());
      }
      lengths.push_back(v.get<int64_t>());
    }
    batches.push_back(std::move(lengths));
  }
  return batches;
}

core::StatusOr<std::vector<std::vector<int64_t>>> read_batches_json(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string text, core::read_file(path));
  return parse_batches_json(text, path);
}

bool is_homogeneous(const Strategy& strategy) {
  return std::all_of(strategy.begin(), strategy.end(),
                     [&](const Scheme& s) { return s == strategy.front(); });
}

core::StatusOr<SimulationReport> simulate_batches(const std::vector<std::vector<int64_t>>& batches,
                                                  const std::vector<StrategyModel>& strategies,
                                                  const SimulationOptions& options) {
  if (batches.empty()) return core::invalid_argument("no global batches to simulate");
  SimulationReport report;
  for (const auto& b : batches) {
    report.batch_tokens.push_back(std::accumulate(b.begin(), b.end(), int64_t{0}));
  }
  struct Config {
    SimulationRun run;
    PlannerOptions options;
  };
  std::vector<Config> configs;
  auto add = [&](std::string name, BatchingMethod method, PlannerAlgorithm algorithm, int only) {
    Config c;
    c.run.name = std::move(name);
    c.run.method = static_cast<int>(method);
    c.run.algorithm = planner_algorithm_name(algorithm);
    c.run.only_strategy = only;
    c.options.method = method;
    c.options.algorithm = algorithm;
    c.options.max_seq_len = options.max_seq_len;
    c.options.seed = options.seed;
    c.options.pack_time_limit_s = options.pack_time_limit_s;
    configs.push_back(std::move(c));
  };
  const std::string first = summarize_strategy(strategies.front().strategy);
  add("method 0 (padding, " + first + ")", BatchingMethod::kPadding, PlannerAlgorithm::kOurs, 0);
  add("method 1 (packing, " + first + ")", BatchingMethod::kPacking, PlannerAlgorithm::kOurs, 0);
  add("method 3 (ours)", BatchingMethod::kDispatchPacking, PlannerAlgorithm::kOurs, -1);
  add("method 4 (ours)", BatchingMethod::kDispatchFinePacking, PlannerAlgorithm::kOurs, -1);
  if (options.include_original) {
    add("method 4 (original)", BatchingMethod::kDispatchFinePacking, PlannerAlgorithm::kOriginal,
        -1);
  }
  for (int k = 0; k < static_cast<int>(strategies.size()); ++k) {
    if (!is_homogeneous(strategies[k].strategy)) continue;
    add("homogeneous " + summarize_strategy(strategies[k].strategy),
        BatchingMethod::kDispatchFinePacking, PlannerAlgorithm::kOurs, k);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (Config& c : configs) {
    SimulationRun& run = c.run;
    // Methods 0/1 take their one strategy through fixed_strategy; homogeneous runs see one.
    std::vector<StrategyModel> only;
    bool restricted = run.only_strategy >= 0 && run.method >= 3;
    if (restricted) only.push_back(strategies[run.only_strategy]);
    const std::vector<StrategyModel>& list = restricted ? only : strategies;
    for (size_t b = 0; b < batches.size(); ++b) {
      auto plan = plan_global_batch(batches[b], list, c.options, static_cast<int64_t>(b));
      if (!plan.is_ok()) {
        if (run.failed_batches++ == 0) run.first_error = plan.status().message();
        run.step_ms.push_back(nan);
        run.planning_ms.push_back(nan);
        run.gap.push_back(nan);
        run.strategy.push_back(-1);
        continue;
      }
      run.step_ms.push_back(plan->estimated_ms);
      run.planning_ms.push_back(plan->planning_ms);
      run.gap.push_back(plan->gap());
      run.strategy.push_back(restricted ? run.only_strategy : plan->strategy);
      run.planned_tokens += report.batch_tokens[b];
      run.total_ms += plan->estimated_ms;
    }
    report.runs.push_back(std::move(run));
  }
  return report;
}

namespace {

core::Json nullable(const std::vector<double>& values) {
  core::Json out = core::Json::array();
  for (double v : values) {
    if (std::isfinite(v)) {
      out.push_back(v);
    } else {
      out.push_back(nullptr);
    }
  }
  return out;
}

double median_of(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

core::Json simulation_to_json(const SimulationReport& report,
                              const std::vector<StrategyModel>& strategies) {
  core::Json json = core::Json::object();
  core::Json list = core::Json::array();
  for (const StrategyModel& s : strategies) list.push_back(format_strategy(s.strategy));
  json["strategies"] = std::move(list);
  json["batch_tokens"] = report.batch_tokens;
  const SimulationRun* ours = nullptr;
  for (const SimulationRun& r : report.runs) {
    if (r.method == 4 && r.algorithm == "ours" && r.only_strategy < 0) ours = &r;
  }
  core::Json runs = core::Json::array();
  for (const SimulationRun& r : report.runs) {
    core::Json j = core::Json::object();
    j["name"] = r.name;
    j["method"] = r.method;
    j["algorithm"] = r.algorithm;
    j["only_strategy"] = r.only_strategy;
    j["tokens_per_s"] = r.tokens_per_s();
    j["mean_step_ms"] = r.total_ms / std::max<size_t>(1, r.step_ms.size() - r.failed_batches);
    j["median_planning_ms"] = median_of(r.planning_ms);
    j["median_gap"] = median_of(r.gap);
    j["failed_batches"] = r.failed_batches;
    if (!r.first_error.empty()) j["first_error"] = r.first_error;
    if (ours && r.failed_batches == 0 && r.tokens_per_s() > 0) {
      j["method4_ours_speedup"] = ours->tokens_per_s() / r.tokens_per_s();
    }
    j["step_ms"] = nullable(r.step_ms);
    j["planning_ms"] = nullable(r.planning_ms);
    j["gap"] = nullable(r.gap);
    j["strategy"] = r.strategy;
    runs.push_back(std::move(j));
  }
  json["runs"] = std::move(runs);
  return json;
}

}  // namespace hydraulis::planner
