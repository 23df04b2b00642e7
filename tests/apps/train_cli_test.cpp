// `hydraulis train --dry-run --strategies ...` through the real binary: the strategy list with
// every pipeline's micro-batch cap and memory, and the plan of the first global batch as a
// plan.jsonl line that parses and places every sequence of the batch exactly once; a list that
// does not fit the model is refused before anything runs. Docs: docs/training.md ("Dry run").
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/json.h"
#include "planner/plan.h"
#include "tests/apps/cli_test_util.h"
#include "tests/train/train_test_util.h"

namespace hydraulis {
namespace {

using testing::hydraulis;

TEST(TrainCli, DistributedDryRunPrintsTheListAndTheFirstPlan) {
  const std::string data = train::testing::real_dataset(60);
  ASSERT_FALSE(data.empty()) << "demo data missing: run scripts/setup.sh";
  const auto run = hydraulis({"train", "--model", "tiny", "--data", data, "--dry-run",
                              "--global-token-num", "4096", "--max-seq-len", "512",
                              "--micro-batch-tokens", "1024", "--strategies",
                              "[[(1, 1, 1), (1, 1, 1)], [(1, 1, 2)]]"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dry run: 2 ranks (mpirun -np 2), 2 strategies, scheme space analytic"),
            std::string::npos)
      << run.output;
  EXPECT_NE(run.output.find("strategy 1: [(1, 1, 2)]"), std::string::npos) << run.output;
  // --micro-batch-tokens 1024 caps every pipeline: 1025 token ids (1024 training positions).
  EXPECT_NE(run.output.find("pipeline 0 (1, 1, 2): up to 1025 tokens per micro-batch"),
            std::string::npos)
      << run.output;
  std::istringstream lines(run.output);
  std::string line, plan_line;
  int64_t sequences = -1;
  while (std::getline(lines, line)) {
    if (line.rfind("{\"batch\": 0", 0) == 0) plan_line = line;
    if (line.rfind("first global batch: ", 0) == 0) sequences = std::stoll(line.substr(20));
  }
  ASSERT_FALSE(plan_line.empty()) << run.output;
  auto json = core::parse_json(plan_line, "dry-run output");
  ASSERT_TRUE(json.is_ok()) << json.status().message();
  auto plan = planner::plan_from_json(*json, "dry-run output");
  ASSERT_TRUE(plan.is_ok()) << plan.status().message();
  EXPECT_GT(plan->estimated_ms, 0);
  ASSERT_GT(sequences, 0);
  std::vector<int> placed(size_t(sequences), 0);
  for (const auto& p : plan->pipelines) {
    for (const auto& mb : p.micro_batches) {
      for (int i : mb) {
        ASSERT_TRUE(i >= 0 && i < sequences) << i;
        ++placed[size_t(i)];
      }
    }
  }
  EXPECT_EQ(placed, std::vector<int>(size_t(sequences), 1));
}

TEST(TrainCli, DryRunRefusesAStrategyTheModelCannotHold) {
  // tiny has 4 layers: pp 8 cannot split them.
  const auto run = hydraulis({"train", "--model", "tiny", "--dry-run", "--strategies",
                              "[[(1, 1, 8)]]"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find("pp"), std::string::npos) << run.output;
}

// --config: `name = value` lines fill the options the command line did not give; an unknown
// name is refused with the file and line.
TEST(TrainCli, ConfigFileFillsOptionsAndNamesTheBadLine) {
  const std::string path = ::testing::TempDir() + "/train_cli.conf";
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("# the original's e2e settings\nmodel = tiny\nmax-seq-len = 512\n"
               "strategies = \"[[(1, 1, 1), (1, 1, 1)], [(1, 1, 2)]]\"\ndry-run = true\n",
               f);
    std::fclose(f);
  }
  auto run = hydraulis({"train", "--config", path, "--max-seq-len", "256"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("dry run: 2 ranks"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("for 256-token micro-batches"), std::string::npos) << run.output;
  {
    std::FILE* f = std::fopen(path.c_str(), "a");
    std::fputs("global-tokens = 7\n", f);
    std::fclose(f);
  }
  run = hydraulis({"train", "--config", path});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.output.find(path + ":6: 'global-tokens' is no option"), std::string::npos)
      << run.output;
}

// --stop-after K: the run stops after step K of the --steps schedule with a checkpoint and exits
// 0; --resume then finishes it with the losses of an uninterrupted run, bit for bit.
TEST(TrainCli, StopAfterThenResumeEqualsAnUninterruptedRun) {
  const std::string data = train::testing::real_dataset(60);
  ASSERT_FALSE(data.empty());
  const std::string dir = ::testing::TempDir() + "/train_cli_stop";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::vector<std::string> common = {"train", "--model", "tiny", "--data", data,
                                           "--steps", "4", "--global-token-num", "1024",
                                           "--max-seq-len", "256", "--lr", "3e-3",
                                           "--warmup-steps", "1"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = common;
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  auto run = hydraulis(with({"--metrics", dir + "/straight.jsonl"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  run = hydraulis(with({"--stop-after", "2", "--checkpoint-dir", dir + "/ck", "--metrics",
                        dir + "/staged.jsonl"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("stopped after step 2 of 4 (--stop-after)"), std::string::npos)
      << run.output;
  run = hydraulis(with({"--resume", "--checkpoint-dir", dir + "/ck", "--metrics",
                        dir + "/staged.jsonl"}));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto losses = [](const std::string& path) {
    std::vector<double> out;
    std::istringstream lines(core::read_file(path).value());
    std::string line;
    while (std::getline(lines, line)) out.push_back(core::parse_json(line, path).value()["loss"].get<double>());
    return out;
  };
  const std::vector<double> straight = losses(dir + "/straight.jsonl");
  ASSERT_EQ(straight.size(), 4u);
  EXPECT_EQ(losses(dir + "/staged.jsonl"), straight);
}

}  // namespace
}  // namespace hydraulis
