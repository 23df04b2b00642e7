// SIGKILL and SIGTERM of the real `hydraulis data prepare` at random points of a run over a
// previous dataset at the same prefix: the previous dataset still verifies byte for byte, no new
// valid-looking pair appears, SIGTERM removes its temp files, and the temp files a SIGKILL leaves
// are removed by the next run. A run that finishes before its signal lands is not counted.
// Docs: docs/reliability.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "data/indexed_dataset.h"
#include "tests/reliability/fault_util.h"

namespace hydraulis::reliability {
namespace {

using Clock = std::chrono::steady_clock;

class KillDuringPrepare : public testing::Test {
 protected:
  void SetUp() override {
    prefix_ = dir_.file("data");
    const std::string previous_input = dir_.file("previous.jsonl");
    write_text(previous_input, corpus_lines("web", 3));
    Child first = spawn(prepare_args(previous_input, prefix_), dir_.file("first.log"));
    ASSERT_EQ(wait_child(first), 0) << read_text(first.log_path);
    previous_ = read_dataset(prefix_);
    ASSERT_EQ(previous_.size(), 3u);
    previous_idx_ = read_text(data::idx_path(prefix_));
    previous_bin_ = read_text(data::bin_path(prefix_));
    previous_sum_ = read_text(data::sum_path(prefix_));
    // The new corpus: the web demo corpus twice (68 MB of JSON), so that a run lasts long enough
    // to be interrupted on a fast machine; then one uninterrupted run (to another prefix) times
    // the writing phase, from the temp P.bin's appearance to the exit.
    big_input_ = dir_.file("big.jsonl");
    const std::string web = read_text(source_dir() + "/data/corpora/web.jsonl");
    ASSERT_FALSE(web.empty()) << "data/corpora/web.jsonl missing: run scripts/setup.sh";
    write_text(big_input_, web + web);
    Child timing = spawn(prepare_args(big_input_, dir_.file("timing")), dir_.file("timing.log"));
    const std::string temp =
        data::bin_path(dir_.file("timing")) + ".tmp." + std::to_string(timing.pid);
    int status = 0;
    while (!std::filesystem::exists(temp) && !child_exited(timing, status)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const auto writing_start = Clock::now();
    status = wait_child(timing);
    ASSERT_EQ(status, 0) << read_text(timing.log_path);
    writing_ms_ =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - writing_start).count();
    std::filesystem::remove(data::bin_path(dir_.file("timing")));
    std::filesystem::remove(data::idx_path(dir_.file("timing")));
    std::filesystem::remove(data::sum_path(dir_.file("timing")));
  }

  // A delay inside the writing phase (its first 70 %).
  std::chrono::milliseconds random_delay(std::mt19937& random) const {
    std::uniform_int_distribution<int64_t> delay(0, std::max<int64_t>(1, writing_ms_ * 7 / 10));
    return std::chrono::milliseconds(delay(random));
  }

  // Starts a run over the previous dataset and sends `signal` `delay` after its temp P.bin
  // appeared (kill_early: right after the start, while the tokenizer loads). Returns false when
  // the run had already finished (no fault injected).
  bool interrupt_run(int signal, std::chrono::milliseconds delay, bool kill_early, int& status,
                     pid_t& pid) {
    Child run = spawn(prepare_args(big_input_, prefix_), dir_.file("run.log"));
    pid = run.pid;
    const std::string temp_bin = data::bin_path(prefix_) + ".tmp." + std::to_string(run.pid);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    if (!kill_early) {
      while (!std::filesystem::exists(temp_bin) && Clock::now() < deadline) {
        if (child_exited(run, status)) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(delay);
    }
    if (child_exited(run, status)) {
      restore_previous();
      return false;
    }
    ::kill(run.pid, signal);
    status = wait_child(run);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {  // it finished before the signal landed
      restore_previous();
      return false;
    }
    return true;
  }

  // Puts the previous files back after a run that completed (it legitimately replaced them).
  void restore_previous() {
    write_text(data::idx_path(prefix_), previous_idx_);
    write_text(data::bin_path(prefix_), previous_bin_);
    write_text(data::sum_path(prefix_), previous_sum_);
  }

  void expect_previous_intact() {
    EXPECT_TRUE(read_dataset(prefix_) == previous_) << "the previous dataset changed";
    EXPECT_TRUE(read_text(data::idx_path(prefix_)) == previous_idx_) << "P.idx changed";
    EXPECT_TRUE(read_text(data::bin_path(prefix_)) == previous_bin_) << "P.bin changed";
    // P.sum is the previous one, or absent: a kill between its removal and the pair's (the
    // writer's order, docs/formats.md) leaves the previous pair without checksums.
    if (std::filesystem::exists(data::sum_path(prefix_))) {
      EXPECT_TRUE(read_text(data::sum_path(prefix_)) == previous_sum_) << "P.sum changed";
    }
  }

  ScratchDir dir_;
  std::string prefix_;
  std::string big_input_;
  std::vector<std::vector<int32_t>> previous_;
  std::string previous_idx_;
  std::string previous_bin_;
  std::string previous_sum_;
  int64_t writing_ms_ = 0;
};

TEST_F(KillDuringPrepare, SigkillKeepsThePreviousDataset) {
  std::mt19937 random(20240611);
  int injected = 0;
  for (int attempt = 0; attempt < 6; ++attempt) {
    const std::chrono::milliseconds delay = random_delay(random);
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ", delay " << delay.count()
                                    << " ms of a " << writing_ms_ << " ms writing phase");
    int status = 0;
    pid_t pid = 0;
    if (!interrupt_run(SIGKILL, delay, attempt == 0, status, pid)) continue;
    ++injected;
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    expect_previous_intact();
    // Only the previous pair and the killed process's temp files (never a P.idx of its own).
    for (const std::string& name : files_with_prefix(dir_.path(), "data")) {
      const bool previous_pair = name == "data.bin" || name == "data.idx" || name == "data.sum";
      const bool temp_of_killed = name.ends_with(".tmp." + std::to_string(pid));
      EXPECT_TRUE(previous_pair || temp_of_killed) << name;
    }
  }
  EXPECT_GE(injected, 4) << "the runs finished before the kill; use a larger corpus";
  // The next (successful) run removes every temp file of the killed runs.
  const std::string small = dir_.file("small.jsonl");
  write_text(small, corpus_lines("code", 2));
  Child next = spawn(prepare_args(small, prefix_), dir_.file("next.log"));
  ASSERT_EQ(wait_child(next), 0) << read_text(next.log_path);
  EXPECT_EQ(files_with_prefix(dir_.path(), "data"),
            (std::vector<std::string>{"data.bin", "data.idx", "data.sum"}));
  EXPECT_EQ(read_dataset(prefix_).size(), 2u);
}

TEST_F(KillDuringPrepare, SigtermStopsCleanly) {
  std::mt19937 random(7);
  int injected = 0;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::chrono::milliseconds delay = random_delay(random);
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ", delay " << delay.count()
                                    << " ms of a " << writing_ms_ << " ms writing phase");
    int status = 0;
    pid_t pid = 0;
    if (!interrupt_run(SIGTERM, delay, attempt == 0, status, pid)) continue;
    ++injected;
    const std::string log = read_text(dir_.file("run.log"));
    if (WIFEXITED(status)) {
      EXPECT_NE(WEXITSTATUS(status), 0) << log;  // stopped by the handler: an error exit
    } else {
      // Before the handler was installed (tokenizer load), SIGTERM's default action applies.
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status;
    }
    expect_previous_intact();
    if (WIFEXITED(status)) {
      EXPECT_EQ(files_with_prefix(dir_.path(), "data"),
                (std::vector<std::string>{"data.bin", "data.idx", "data.sum"}))
          << log;
    }
  }
  EXPECT_GE(injected, 3) << "the runs finished before the signal; use a larger corpus";
}

}  // namespace
}  // namespace hydraulis::reliability
