// A rank killed at a random point of a training step under mpirun: the run ends by itself well
// within the timeout (no hang), non-zero, and the log names the dead rank (3 trials). The real `hydraulis
// train` with two heterogeneous strategies on 2 ranks; SIGKILL goes to one of the two rank
// processes once rank 0 has printed step 1, after a random delay. Docs: docs/reliability.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <thread>

#include "tests/reliability/fault_util.h"

namespace hydraulis::reliability {
namespace {

using Clock = std::chrono::steady_clock;

// Direct children of `parent` (the rank processes mpirun starts), from /proc.
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::ifstream list("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                     "/children");
  for (pid_t pid; list >> pid;) out.push_back(pid);
  return out;
}

TEST(RankKill, SurvivingRanksStopWithTheDeadRankNamed) {
  const char* mpiexec = std::getenv("HYD_MPIEXEC");
  ASSERT_NE(mpiexec, nullptr) << "HYD_MPIEXEC unset (registered by tests/reliability/CMakeLists)";
  ScratchDir dir;
  const std::string input = dir.file("web.jsonl"), prefix = dir.file("web");
  write_text(input, corpus_lines("web", 120));
  Child prepare = spawn(prepare_args(input, prefix), dir.file("prepare.log"));
  ASSERT_EQ(wait_child(prepare), 0) << read_text(dir.file("prepare.log"));
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 3; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::string log = dir.file("train" + std::to_string(trial) + ".log");
    Child run = spawn({mpiexec, "-np", "2", "--oversubscribe", hydraulis_binary(), "train",
                       "--model", "tiny", "--data", prefix, "--steps", "200",
                       "--global-token-num", "1024", "--max-seq-len", "256", "--strategies",
                       "[[(1, 1, 1), (1, 1, 1)], [(1, 1, 2)]]"},
                      log);
    // Wait for the first step, then kill one rank after a random delay (inside some later step).
    const auto start = Clock::now();
    while (read_text(log).find("step 1/") == std::string::npos) {
      int status = 0;
      ASSERT_FALSE(child_exited(run, status)) << "finished before the kill:\n" << read_text(log);
      ASSERT_LT(Clock::now() - start, std::chrono::seconds(120)) << read_text(log);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1500)(rng)));
    std::vector<pid_t> ranks = children_of(run.pid);
    ASSERT_EQ(ranks.size(), 2u) << read_text(log);
    const pid_t victim = ranks[size_t(std::uniform_int_distribution<int>(0, 1)(rng))];
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    const auto killed = Clock::now();
    int status = 0;
    while (!child_exited(run, status)) {
      ASSERT_LT(Clock::now() - killed, std::chrono::seconds(60)) << "still running: a hang";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::string text = read_text(log);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << text;
    // mpirun names the dead rank ("process rank 1 with PID ... exited on signal 9 (Killed)").
    EXPECT_NE(text.find("process rank "), std::string::npos) << text;
    EXPECT_NE(text.find("exited on signal 9"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace hydraulis::reliability
