// Run report: metrics JSONL → summary and figure.
#include "train/run_report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/file.h"
#include "core/json.h"

namespace hydraulis::train {

namespace {

double optional_number(const core::Json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

}  // namespace

core::StatusOr<std::vector<StepMetrics>> read_metrics(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(std::string text, core::read_file(path));
  std::vector<StepMetrics> steps;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, number);
    HYD_ASSIGN_OR_RETURN(core::Json j, core::parse_json(line, where));
    StepMetrics m;
    HYD_ASSIGN_OR_RETURN(m.step, core::json_integer(j, "step", where));
    HYD_ASSIGN_OR_RETURN(m.tokens, core::json_integer(j, "tokens", where));
    HYD_ASSIGN_OR_RETURN(m.step_ms, core::json_number(j, "step_ms", where));
    HYD_ASSIGN_OR_RETURN(m.strategy, core::json_integer(j, "strategy", where));
    HYD_ASSIGN_OR_RETURN(m.tokens_per_s, core::json_number(j, "tokens_per_s", where));
    m.loss = optional_number(j, "loss", std::nan(""));  // null: a skipped non-finite step
    m.estimated_ms = optional_number(j, "estimated_ms", -1);
    m.mfu = optional_number(j, "mfu", -1);
    m.model_tflops_per_s = optional_number(j, "model_tflops_per_s", -1);
    m.peak_memory_bytes = int64_t(optional_number(j, "peak_memory_bytes", -1));
    if (!steps.empty() && m.step != steps.back().step + 1) {
      return core::invalid_argument("{}: step {} follows step {}: not one run's metrics", where,
                                    m.step, steps.back().step);
    }
    steps.push_back(m);
  }
  if (steps.empty()) return core::invalid_argument("{}: no step in the metrics file", path);
  return steps;
}

core::Json RunSummary::to_json() const {
  core::Json j = core::Json::object();
  j["steps"] = steps;
  j["first_loss"] = first_loss;
  j["last_loss"] = last_loss;
  j["min_loss"] = min_loss;
  j["mean_tokens_per_s"] = mean_tokens_per_s;
  if (mean_mfu >= 0) j["mean_mfu"] = mean_mfu;
  if (mean_tflops_per_s >= 0) j["mean_model_tflops_per_s"] = mean_tflops_per_s;
  if (peak_memory_bytes >= 0) j["peak_memory_bytes"] = peak_memory_bytes;
  if (estimate_mean_relative_error >= 0) {
    j["estimate_mean_relative_error"] = estimate_mean_relative_error;
    j["estimate_mean_signed_error"] = estimate_mean_signed_error;
  }
  j["switches"] = switches;
  j["steps_per_strategy"] = steps_per_strategy;
  return j;
}

RunSummary summarize_run(const std::vector<StepMetrics>& steps) {
  RunSummary s;
  s.steps = int64_t(steps.size());
  if (steps.empty()) return s;
  s.first_loss = steps.front().loss;
  s.last_loss = steps.back().loss;
  s.min_loss = s.first_loss;
  double tps = 0, mfu = 0, tflops = 0, rel = 0, signed_rel = 0;
  int64_t timed = 0, with_mfu = 0, with_estimate = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    const StepMetrics& m = steps[i];
    if (std::isfinite(m.loss)) s.min_loss = std::min(s.min_loss, m.loss);
    if (m.strategy >= int64_t(s.steps_per_strategy.size())) s.steps_per_strategy.resize(size_t(m.strategy + 1), 0);
    ++s.steps_per_strategy[size_t(m.strategy)];
    if (i > 0 && m.strategy != steps[i - 1].strategy) ++s.switches;
    s.peak_memory_bytes = std::max(s.peak_memory_bytes, m.peak_memory_bytes);
    if (i == 0 && steps.size() > 1) continue;  // the warm-up step
    tps += m.tokens_per_s;
    ++timed;
    if (m.mfu >= 0) {
      mfu += m.mfu;
      tflops += m.model_tflops_per_s;
      ++with_mfu;
    }
    if (m.estimated_ms >= 0 && m.step_ms > 0) {
      rel += std::abs(m.estimated_ms - m.step_ms) / m.step_ms;
      signed_rel += (m.estimated_ms - m.step_ms) / m.step_ms;
      ++with_estimate;
    }
  }
  s.mean_tokens_per_s = tps / double(std::max<int64_t>(timed, 1));
  if (with_mfu > 0) {
    s.mean_mfu = mfu / double(with_mfu);
    s.mean_tflops_per_s = tflops / double(with_mfu);
  }
  if (with_estimate > 0) {
    s.estimate_mean_relative_error = rel / double(with_estimate);
    s.estimate_mean_signed_error = signed_rel / double(with_estimate);
  }
  return s;
}

viz::Figure run_figure(const std::vector<StepMetrics>& steps, const RunSummary& summary,
                       const std::string& title) {
  viz::Figure f;
  f.title = title;
  f.columns = 2;
  auto panel = [&](std::string name, std::string y_label) {
    viz::Chart c;
    c.title = std::move(name);
    c.x.label = "step";
    c.x.min_tick_step = 1;
    c.y.label = std::move(y_label);
    return c;
  };
  viz::Series loss{"loss"}, measured{"measured"}, estimated{"planner's estimate"}, tps{"tokens/s"},
      strategy{"strategy"};
  estimated.dashed = true;
  strategy.style = viz::SeriesStyle::kScatter;
  for (const StepMetrics& m : steps) {
    const double x = double(m.step);
    if (std::isfinite(m.loss)) {
      loss.x.push_back(x);
      loss.y.push_back(m.loss);
    }
    measured.x.push_back(x);
    measured.y.push_back(m.step_ms);
    if (m.estimated_ms >= 0) {
      estimated.x.push_back(x);
      estimated.y.push_back(m.estimated_ms);
    }
    tps.x.push_back(x);
    tps.y.push_back(m.tokens_per_s);
    strategy.x.push_back(x);
    strategy.y.push_back(double(m.strategy));
  }
  viz::Chart a = panel("Loss (mean over the step's tokens)", "loss");
  a.series.push_back(loss);
  a.notes.push_back(fmt::format("{:.3f} -> {:.3f} (min {:.3f})", summary.first_loss,
                                summary.last_loss, summary.min_loss));
  a.notes_position = viz::LegendPosition::kBottomLeft;
  a.legend = viz::LegendPosition::kNone;
  viz::Chart b = panel("Step time: measured vs the planner's estimate", "ms");
  b.series.push_back(measured);
  if (!estimated.x.empty()) {
    b.series.push_back(estimated);
    b.notes.push_back(fmt::format("mean |est - measured| / measured {:.1f}% (signed {:+.1f}%)",
                                  100 * summary.estimate_mean_relative_error,
                                  100 * summary.estimate_mean_signed_error));
  }
  b.y.min = 0;
  b.legend = viz::LegendPosition::kBottomRight;
  b.notes_position = viz::LegendPosition::kBottomLeft;
  viz::Chart c = panel("Throughput", "tokens/s");
  c.series.push_back(tps);
  c.y.min = 0;
  c.legend = viz::LegendPosition::kNone;
  c.notes.push_back(fmt::format("mean {:.0f} tokens/s after step 1", summary.mean_tokens_per_s));
  if (summary.mean_mfu >= 0) {
    c.notes.push_back(fmt::format("MFU {:.1f}% ({:.0f} TFLOP/s)", 100 * summary.mean_mfu,
                                  summary.mean_tflops_per_s));
  }
  c.notes_position = viz::LegendPosition::kBottomLeft;
  viz::Chart d = panel("Strategy of each step (index into the list)", "strategy");
  d.series.push_back(strategy);
  d.y.min_tick_step = 1;
  d.y.min = -0.5;
  d.y.max = double(summary.steps_per_strategy.size()) - 0.5;
  d.legend = viz::LegendPosition::kNone;
  d.notes.push_back(fmt::format("{} switches", summary.switches));
  f.panels = {a, b, c, d};
  return f;
}

}  // namespace hydraulis::train
