// Run report: a metrics file written by the real MetricsWriter is read back, summarised with
// hand-computed values (the first step left out of the means), drawn as a valid figure; malformed
// files are refused naming the file and line.
#include "train/run_report.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/file.h"

namespace hydraulis::train {
namespace {

std::string write_metrics(const std::string& name, const std::vector<StepMetrics>& steps) {
  const std::string path = ::testing::TempDir() + "/" + name;
  MetricsWriter writer(path);
  for (const StepMetrics& m : steps) EXPECT_TRUE(writer.append(m).is_ok());
  return path;
}

StepMetrics step(int64_t i, double loss, double ms, double estimated, int64_t strategy) {
  StepMetrics m;
  m.step = i;
  m.loss = loss;
  m.tokens = 1000;
  m.step_ms = ms;
  m.tokens_per_s = 1000 / (ms / 1e3);
  m.estimated_ms = estimated;
  m.strategy = strategy;
  return m;
}

TEST(RunReport, SummaryOfAWrittenRun) {
  // Step 1 warms up (left out of the means); steps 2-4: estimates 10% high, exact, 20% low.
  const std::string path = write_metrics(
      "report_run.jsonl", {step(1, 10.5, 400, 100, 0), step(2, 9.0, 100, 110, 1),
                           step(3, 8.0, 200, 200, 1), step(4, 8.5, 250, 200, 0)});
  auto steps = read_metrics(path);
  ASSERT_TRUE(steps.is_ok()) << steps.status().message();
  const RunSummary s = summarize_run(*steps);
  EXPECT_EQ(s.steps, 4);
  EXPECT_DOUBLE_EQ(s.first_loss, 10.5);
  EXPECT_DOUBLE_EQ(s.last_loss, 8.5);
  EXPECT_DOUBLE_EQ(s.min_loss, 8.0);
  EXPECT_NEAR(s.estimate_mean_relative_error, (0.1 + 0.0 + 0.2) / 3, 1e-12);
  EXPECT_NEAR(s.estimate_mean_signed_error, (0.1 + 0.0 - 0.2) / 3, 1e-12);
  EXPECT_NEAR(s.mean_tokens_per_s, (10000.0 + 5000.0 + 4000.0) / 3, 1e-9);
  EXPECT_EQ(s.switches, 2);
  EXPECT_EQ(s.steps_per_strategy, (std::vector<int64_t>{2, 2}));
  EXPECT_LT(s.mean_mfu, 0);  // a CPU run records none
  const viz::Figure f = run_figure(*steps, s, "test run");
  EXPECT_EQ(f.panels.size(), 4u);
  EXPECT_TRUE(viz::validate_figure(f).is_ok());
  EXPECT_TRUE(viz::render_svg(f).is_ok());
}

TEST(RunReport, MalformedFilesNameTheLine) {
  const std::string gap = write_metrics("report_gap.jsonl", {step(1, 10, 100, 90, 0), step(3, 9, 100, 90, 0)});
  auto r = read_metrics(gap);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("report_gap.jsonl:2: step 3 follows step 1"), std::string::npos)
      << r.status().message();
  const std::string bad = ::testing::TempDir() + "/report_bad.jsonl";
  std::ofstream(bad) << "{\"step\": 1, \"tokens\": 5, \"step_ms\": 1, \"strategy\": 0, \"tokens_per_s\": 5}\n"
                     << "{\"step\": 2, \"tokens\": 5}\n";
  r = read_metrics(bad);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("report_bad.jsonl:2"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("step_ms"), std::string::npos) << r.status().message();
  EXPECT_FALSE(read_metrics(::testing::TempDir() + "/report_missing.jsonl").is_ok());
}

}  // namespace
}  // namespace hydraulis::train
