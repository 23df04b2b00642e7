// `hydraulis simulate`: estimated step time and throughput over many global batches for batching
// methods 0/1/3/4 and each homogeneous strategy alone (src/planner/simulate.h); prints a comparison
// table and writes DIR/simulate.json plus DIR/simulate.{svg,png}. Docs: docs/planner_assignment.md.
#include <cmath>
#include <cstdio>
#include <string>

#include "apps/hydraulis/batch_source.h"
#include "apps/hydraulis/commands.h"
#include "core/file.h"
#include "planner/simulate.h"
#include "planner/strategy.h"
#include "viz/chart.h"

namespace hydraulis::apps {
namespace {

struct SimulateArgs {
  std::string scheme_space;
  int num_gpus = 0;
  std::string strategies;
  BatchSourceArgs source;
  bool with_original = false;
  double pack_time_limit_s = 0.5;
  uint64_t seed = 0;
  std::string out;
};

// Short bar label: "m4 ours", "m0 padding", "homog 4x(1,16,1)".
std::string short_run_label(const planner::SimulationRun& run) {
  if (run.only_strategy >= 0 && run.method == 4) {
    size_t space = run.name.find(' ');
    return "homog " + (space == std::string::npos ? run.name : run.name.substr(space + 1));
  }
  std::string label = "m" + std::to_string(run.method) + " " + run.algorithm;
  if (run.method == 0) label = "m0 padding";
  if (run.method == 1) label = "m1 packing";
  return label;
}

// Left: throughput of every run that held all batches (infeasible runs are left out and named in
// the notes). Right: step time per batch on a log axis (method 0 is ~40x slower than the rest).
core::Status write_plot(const planner::SimulationReport& report, const std::string& path) {
  viz::Figure figure;
  figure.title = "hydraulis simulate: estimated throughput and step time";
  figure.columns = 2;
  viz::Chart bars;
  bars.title = "Throughput over all batches (estimated)";
  bars.y.label = "tokens/s";
  bars.legend = viz::LegendPosition::kNone;
  viz::Series series;
  series.style = viz::SeriesStyle::kBars;
  for (const planner::SimulationRun& run : report.runs) {
    if (run.failed_batches > 0) {
      bars.notes.push_back(fmt::format("{}: {} of {} batches infeasible", short_run_label(run),
                                       run.failed_batches, run.step_ms.size()));
      continue;
    }
    series.x.push_back(static_cast<double>(bars.x.categories.size()));
    series.y.push_back(run.tokens_per_s());
    bars.x.categories.push_back(short_run_label(run));
  }
  bars.series.push_back(std::move(series));
  viz::Chart steps;
  steps.title = "Estimated step time per global batch";
  steps.x.label = "global batch";
  steps.x.min_tick_step = 1;
  steps.y.label = "ms (log scale)";
  steps.y.scale = viz::AxisScale::kLog;
  steps.legend = viz::LegendPosition::kOutsideRight;
  for (const planner::SimulationRun& run : report.runs) {
    viz::Series line;
    line.label = short_run_label(run);
    for (size_t b = 0; b < run.step_ms.size(); ++b) {
      if (!std::isfinite(run.step_ms[b]) || run.step_ms[b] <= 0) continue;
      line.x.push_back(static_cast<double>(b));
      line.y.push_back(run.step_ms[b]);
    }
    if (!line.x.empty()) steps.series.push_back(std::move(line));
  }
  figure.panels = {std::move(bars), std::move(steps)};
  figure.panel_width = 720;
  return viz::render_figure(figure, path);
}

core::Status run_simulate(const SimulateArgs& args) {
  if (args.num_gpus <= 0) {
    return core::invalid_argument("--num-gpus must be positive, got {}", args.num_gpus);
  }
  HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::Strategy> strategies,
                       planner::parse_strategy_list(args.strategies));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::StrategyModel> models,
                       planner::build_strategy_models(space, strategies, args.num_gpus));
  HYD_ASSIGN_OR_RETURN(auto batches, load_global_batches(args.source));
  HYD_RETURN_IF_ERROR(core::make_directories(args.out));

  planner::SimulationOptions options;
  options.max_seq_len = args.source.max_seq_len;
  options.include_original = args.with_original;
  options.pack_time_limit_s = args.pack_time_limit_s;
  options.seed = args.seed;
  HYD_ASSIGN_OR_RETURN(planner::SimulationReport report,
                       planner::simulate_batches(batches, models, options));

  std::printf("%zu global batches, %d GPUs, %zu strategies\n", batches.size(), args.num_gpus,
              strategies.size());
  std::printf("%-40s %-14s %-13s %-10s %-12s %s\n", "run", "tokens/s", "mean_step_ms",
              "vs_ours", "planning_ms", "failed");
  const planner::SimulationRun* ours = nullptr;
  for (const auto& r : report.runs) {
    if (r.method == 4 && r.algorithm == "ours" && r.only_strategy < 0) ours = &r;
  }
  for (const auto& r : report.runs) {
    size_t planned = r.step_ms.size() - static_cast<size_t>(r.failed_batches);
    double planning = 0;
    for (double p : r.planning_ms) planning += std::isfinite(p) ? p : 0.0;
    if (r.failed_batches > 0) {
      // A run that cannot hold every batch has no comparable throughput.
      std::printf("%-40s %-14s %-13s %-10s %-12.2f %d of %zu infeasible — %s\n", r.name.c_str(),
                  "-", "-", "-", planned ? planning / planned : 0.0, r.failed_batches,
                  r.step_ms.size(), r.first_error.c_str());
      continue;
    }
    std::printf("%-40s %-14.0f %-13.1f %-10.3f %-12.2f 0\n", r.name.c_str(), r.tokens_per_s(),
                planned ? r.total_ms / planned : 0.0,
                ours && r.tokens_per_s() > 0 ? ours->tokens_per_s() / r.tokens_per_s() : 0.0,
                planned ? planning / planned : 0.0);
  }
  core::Json json = planner::simulation_to_json(report, models);
  json["input"] = {{"scheme_space", args.scheme_space},
                   {"num_gpus", args.num_gpus},
                   {"data", args.source.data},
                   {"batches", args.source.batches},
                   {"global_token_num", args.source.global_token_num},
                   {"max_seq_len", args.source.max_seq_len}};
  std::string json_path = args.out + "/simulate.json";
  HYD_RETURN_IF_ERROR(core::write_json_file(json_path, json));
  HYD_RETURN_IF_ERROR(write_plot(report, args.out + "/simulate"));
  std::printf("wrote %s and %s/simulate.{svg,png}\n", json_path.c_str(), args.out.c_str());
  return core::Status::ok();
}

}  // namespace

void add_simulate_command(CLI::App& root, CommandList& commands) {
  auto args = std::make_shared<SimulateArgs>();
  CLI::App* app = root.add_subcommand(
      "simulate",
      "Estimate step time and throughput over many global batches for batching methods "
      "0/1/3/4 and the homogeneous baselines");
  app->add_option("--scheme-space", args->scheme_space, "Scheme-space JSON")->required();
  app->add_option("--num-gpus", args->num_gpus, "Number of GPUs every strategy uses")->required();
  app->add_option("--strategies", args->strategies, "Strategy list (original text syntax)")
      ->required();
  add_batch_source_options(app, &args->source);
  app->add_option("--max-seq-len", args->source.max_seq_len, "Longest sequence (tokens)")
      ->capture_default_str();
  app->add_flag("--with-original", args->with_original,
                "Also run the original's method 4 (CBC packing; slow)");
  app->add_option("--pack-time-limit", args->pack_time_limit_s,
                  "CBC time limit per packing solve of the original (s)")
      ->capture_default_str();
  app->add_option("--seed", args->seed, "First shuffle seed of the original's dispatch")
      ->capture_default_str();
  app->add_option("--out", args->out, "Output directory")->required();
  commands.push_back({app, [args] { return run_simulate(*args); }});
}

}  // namespace hydraulis::apps
