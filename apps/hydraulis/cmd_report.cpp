// `hydraulis report`: a training run's summary and figure from its metrics JSONL
// (train/run_report.h): DIR/training.svg + .png and DIR/summary.json, the summary printed.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "apps/hydraulis/commands.h"
#include "core/file.h"
#include "core/progress.h"
#include "train/run_report.h"

namespace hydraulis::apps {

namespace {

struct ReportArgs {
  std::string metrics;
  std::string out;
  std::string title;
};

core::Status run_report(const ReportArgs& args) {
  HYD_ASSIGN_OR_RETURN(std::vector<train::StepMetrics> steps, train::read_metrics(args.metrics));
  const train::RunSummary s = train::summarize_run(steps);
  std::error_code ec;
  std::filesystem::create_directories(args.out, ec);
  if (ec) return core::invalid_argument("--out {}: cannot create it: {}", args.out, ec.message());
  const std::string title = args.title.empty() ? args.metrics : args.title;
  HYD_RETURN_IF_ERROR(viz::render_figure(train::run_figure(steps, s, title), args.out + "/training"));
  HYD_RETURN_IF_ERROR(core::write_file_atomic(args.out + "/summary.json", s.to_json().dump(2) + "\n"));
  std::printf("%lld steps: loss %.4f -> %.4f (min %.4f); %s tokens/s after step 1",
              static_cast<long long>(s.steps), s.first_loss, s.last_loss, s.min_loss,
              core::format_count(s.mean_tokens_per_s).c_str());
  if (s.mean_mfu >= 0) std::printf(", MFU %.1f%% (%.0f TFLOP/s)", 100 * s.mean_mfu, s.mean_tflops_per_s);
  std::printf("\n");
  if (s.estimate_mean_relative_error >= 0) {
    std::printf("planner's step-time estimate vs measured: mean relative error %.1f%% (signed "
                "%+.1f%%)\n",
                100 * s.estimate_mean_relative_error, 100 * s.estimate_mean_signed_error);
  }
  std::printf("strategies:");
  for (size_t k = 0; k < s.steps_per_strategy.size(); ++k) {
    std::printf(" %zu: %lld steps", k, static_cast<long long>(s.steps_per_strategy[k]));
  }
  std::printf("; %lld switches\nwrote %s/training.svg, training.png, summary.json\n",
              static_cast<long long>(s.switches), args.out.c_str());
  return core::Status::ok();
}

}  // namespace

void add_report_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "report",
      "Summarise and plot a training run from its metrics JSONL (train --metrics): loss,\n"
      "measured step time vs the planner's estimate, tokens/s and MFU, strategy per step.");
  auto args = std::make_shared<ReportArgs>();
  app->add_option("--metrics", args->metrics, "Metrics JSONL written by `hydraulis train`")
      ->required();
  app->add_option("--out", args->out, "Directory for training.svg/.png and summary.json")->required();
  app->add_option("--title", args->title, "Figure title (default: the metrics path)");
  commands.push_back({app, [args]() { return run_report(*args); }});
}

}  // namespace hydraulis::apps
