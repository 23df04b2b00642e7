// `hydraulis simulate`: estimated step time and throughput over many global batches for batching
// methods 0/1/3/4 and each homogeneous strategy alone (src/planner/simulate.h); prints a comparison
// table and writes DIR/simulate.json plus DIR/simulate.{svg,png}. Docs: docs/planner_assignment.md.
#include <cmath>
#include <cstdio>
#include <string>

#include "apps/hydraulis/commands.h"
#include "core/file.h"
#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "planner/simulate.h"
#include "planner/strategy.h"
#include "viz/chart.h"

namespace hydraulis::apps {
namespace {

struct SimulateArgs {
  std::string scheme_space;
  int num_gpus = 0;
  std::string strategies;
  std::string data;
  std::string batches;
  int64_t global_token_num = 200000;
  int64_t max_seq_len = 32768;
  int num_batches = 50;
  bool with_original = false;
  double pack_time_limit_s = 0.5;
  uint64_t seed = 0;
  std::string out;
};

// Global batches of training positions (a sequence of n tokens gives n − 1, spec.md §1).
core::StatusOr<std::vector<std::vector<int64_t>>> batches_from_dataset(const SimulateArgs& args) {
  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset, data::IndexedDataset::open(args.data));
  data::SamplerConfig config;
  config.global_token_num = args.global_token_num;
  config.max_seq_len = args.max_seq_len;
  HYD_ASSIGN_OR_RETURN(data::GlobalBatchSampler sampler,
                       data::GlobalBatchSampler::create(dataset.lengths(), config));
  std::vector<std::vector<int64_t>> out;
  for (const data::GlobalBatch& batch : sampler.take(static_cast<size_t>(args.num_batches))) {
    std::vector<int64_t> lengths;
    for (int64_t n : batch.lengths()) {
      if (n >= 2) lengths.push_back(n - 1);
    }
    if (!lengths.empty()) out.push_back(std::move(lengths));
  }
  return out;
}

core::Status write_plot(const planner::SimulationReport& report, const std::string& path) {
  viz::Figure figure;
  figure.title = "hydraulis simulate";
  figure.columns = 2;
  viz::Chart bars;
  bars.title = "Throughput (estimated)";
  bars.y.label = "tokens/s";
  bars.legend = viz::LegendPosition::kNone;
  viz::Series series;
  series.style = viz::SeriesStyle::kBars;
  for (size_t r = 0; r < report.runs.size(); ++r) {
    bars.x.categories.push_back(report.runs[r].name.substr(0, 24));
    series.x.push_back(static_cast<double>(r));
    series.y.push_back(report.runs[r].tokens_per_s());
  }
  bars.series.push_back(std::move(series));
  viz::Chart steps;
  steps.title = "Estimated step time per global batch";
  steps.x.label = "global batch";
  steps.y.label = "ms";
  for (const planner::SimulationRun& run : report.runs) {
    viz::Series line;
    line.label = run.name;
    for (size_t b = 0; b < run.step_ms.size(); ++b) {
      if (!std::isfinite(run.step_ms[b])) continue;
      line.x.push_back(static_cast<double>(b));
      line.y.push_back(run.step_ms[b]);
    }
    if (!line.x.empty()) steps.series.push_back(std::move(line));
  }
  figure.panels = {std::move(bars), std::move(steps)};
  figure.panel_width = 640;
  return viz::render_figure(figure, path);
}

core::Status run_simulate(const SimulateArgs& args) {
  if (args.data.empty() == args.batches.empty()) {
    return core::invalid_argument("give exactly one of --data P or --batches F.json");
  }
  if (args.num_gpus <= 0 || args.global_token_num <= 0 || args.max_seq_len <= 0 ||
      args.num_batches <= 0) {
    return core::invalid_argument(
        "--num-gpus, --global-token-num, --max-seq-len and --num-batches must be positive (got "
        "{}, {}, {}, {})",
        args.num_gpus, args.global_token_num, args.max_seq_len, args.num_batches);
  }
  HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::Strategy> strategies,
                       planner::parse_strategy_list(args.strategies));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::StrategyModel> models,
                       planner::build_strategy_models(space, strategies, args.num_gpus));
  std::vector<std::vector<int64_t>> batches;
  if (!args.data.empty()) {
    HYD_ASSIGN_OR_RETURN(batches, batches_from_dataset(args));
  } else {
    HYD_ASSIGN_OR_RETURN(batches, planner::read_batches_json(args.batches));
  }
  HYD_RETURN_IF_ERROR(core::make_directories(args.out));

  planner::SimulationOptions options;
  options.max_seq_len = args.max_seq_len;
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
    std::printf("%-40s %-14.0f %-13.1f %-10.3f %-12.2f %d%s%s\n", r.name.c_str(), r.tokens_per_s(),
                planned ? r.total_ms / planned : 0.0,
                ours && r.tokens_per_s() > 0 ? ours->tokens_per_s() / r.tokens_per_s() : 0.0,
                planned ? planning / planned : 0.0, r.failed_batches,
                r.failed_batches ? " — " : "", r.failed_batches ? r.first_error.c_str() : "");
  }
  core::Json json = planner::simulation_to_json(report, models);
  json["input"] = {{"scheme_space", args.scheme_space},
                   {"num_gpus", args.num_gpus},
                   {"data", args.data},
                   {"batches", args.batches},
                   {"global_token_num", args.global_token_num},
                   {"max_seq_len", args.max_seq_len}};
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
  app->add_option("--data", args->data, "Indexed dataset prefix (P.bin/P.idx)");
  app->add_option("--batches", args->batches, "JSON array of global batches of lengths");
  app->add_option("--global-token-num", args->global_token_num, "Tokens per global batch (--data)")
      ->capture_default_str();
  app->add_option("--max-seq-len", args->max_seq_len, "Longest sequence (tokens)")
      ->capture_default_str();
  app->add_option("--num-batches", args->num_batches, "Global batches sampled from --data")
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
