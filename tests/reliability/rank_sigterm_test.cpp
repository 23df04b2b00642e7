// SIGTERM to one rank of `mpirun -np 2 hydraulis train --checkpoint-dir D` (the signal reaching
// the ranks at different times, here one of them only): the ranks agree on the stop after the
// same step, checkpoint it, and exit non-zero naming it; the checkpoint verifies, and --resume
// under mpirun reproduces the losses of an uninterrupted run bit for bit. Docs:
// docs/reliability.md, docs/training.md ("Checkpoints, resume and SIGTERM").
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "core/json.h"
#include "tests/reliability/fault_util.h"
#include "train/checkpoint.h"

namespace hydraulis::reliability {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<pid_t> rank_processes(pid_t mpirun) {
  std::vector<pid_t> out;
  std::ifstream list("/proc/" + std::to_string(mpirun) + "/task/" + std::to_string(mpirun) +
                     "/children");
  for (pid_t pid; list >> pid;) out.push_back(pid);
  return out;
}

std::vector<double> losses(const std::string& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto json = core::parse_json(line, metrics);
    if (json.is_ok()) out.push_back((*json)["loss"].get<double>());
  }
  return out;
}

TEST(RankSigterm, OneSignalledRankStopsBothAtOneCheckpointedStep) {
  const char* mpiexec = std::getenv("HYD_MPIEXEC");
  ASSERT_NE(mpiexec, nullptr) << "HYD_MPIEXEC unset (registered by tests/reliability/CMakeLists)";
  ScratchDir dir;
  const std::string input = dir.file("web.jsonl"), prefix = dir.file("web");
  write_text(input, corpus_lines("web", 80));
  Child prepare = spawn(prepare_args(input, prefix), dir.file("prepare.log"));
  ASSERT_EQ(wait_child(prepare), 0) << read_text(dir.file("prepare.log"));
  const std::string checkpoints = dir.file("ck");
  auto train = [&](const std::string& metrics, std::vector<std::string> extra) {
    std::vector<std::string> args = {mpiexec, "-np", "2", "--oversubscribe", hydraulis_binary(),
                                     "train", "--model", "tiny", "--data", prefix, "--steps", "6",
                                     "--global-token-num", "512", "--max-seq-len", "128", "--lr",
                                     "3e-3", "--strategies", "[[(1, 1, 1), (1, 1, 1)], [(1, 1, 2)]]",
                                     "--metrics", metrics};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  Child reference = spawn(train(dir.file("reference.jsonl"), {}), dir.file("reference.log"));
  ASSERT_EQ(wait_child(reference), 0) << read_text(dir.file("reference.log"));
  const std::vector<double> expected = losses(dir.file("reference.jsonl"));
  ASSERT_EQ(expected.size(), 6u);

  const std::string log = dir.file("stopped.log"), metrics = dir.file("m.jsonl");
  Child run = spawn(train(metrics, {"--checkpoint-dir", checkpoints}), log);
  const auto start = Clock::now();
  while (read_text(log).find("step 2/6") == std::string::npos) {
    int status = 0;
    ASSERT_FALSE(child_exited(run, status)) << "finished before the signal:\n" << read_text(log);
    ASSERT_LT(Clock::now() - start, std::chrono::seconds(180)) << read_text(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::mt19937 random(31);
  std::vector<pid_t> ranks = rank_processes(run.pid);
  ASSERT_EQ(ranks.size(), 2u) << read_text(log);
  ASSERT_EQ(::kill(ranks[size_t(std::uniform_int_distribution<int>(0, 1)(random))], SIGTERM), 0);
  int status = 0;
  const auto signalled = Clock::now();
  while (!child_exited(run, status)) {
    ASSERT_LT(Clock::now() - signalled, std::chrono::seconds(120)) << "still running: a hang";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const std::string text = read_text(log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << text;
  auto file = train::resolve_checkpoint(checkpoints);
  ASSERT_TRUE(file.is_ok()) << file.status().message() << text;
  auto reader = train::CheckpointReader::open(*file);
  ASSERT_TRUE(reader.is_ok()) << reader.status().message();
  for (size_t t = 0; t < reader->tensors().size(); ++t) ASSERT_TRUE(reader->read(t).is_ok());
  const int64_t step = reader->state().step;
  EXPECT_GE(step, 2);
  EXPECT_LT(step, 6);
  // Both ranks stopped after that step and say so.
  const std::string said = "stopped by SIGTERM after step " + std::to_string(step) + " of 6";
  const size_t first = text.find(said);
  EXPECT_NE(first, std::string::npos) << text;
  EXPECT_NE(text.find(said, first + 1), std::string::npos) << "only one rank stopped:\n" << text;

  Child resumed = spawn(train(metrics, {"--checkpoint-dir", checkpoints, "--resume"}),
                        dir.file("resumed.log"));
  ASSERT_EQ(wait_child(resumed), 0) << read_text(dir.file("resumed.log"));
  EXPECT_EQ(losses(metrics), expected) << read_text(metrics);
}

}  // namespace
}  // namespace hydraulis::reliability
