// Faults during checkpoint writes of the real `hydraulis train` (tiny model, an 87 MB
// checkpoint): SIGKILL at seeded random points of the write, SIGTERM at random points of a run,
// and a full disk (RLIMIT_FSIZE at 5 sizes from the header to the footer). After every fault the
// checkpoint `latest` names still verifies (every chunk's CRC32C), a previous checkpoint is byte
// for byte unchanged, no half-written step directory looks committed, and a final --resume gives
// the losses of an uninterrupted run bit for bit. Docs: docs/reliability.md, docs/training.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "core/crc32c.h"
#include "core/file.h"
#include "core/json.h"
#include "tests/reliability/fault_util.h"
#include "train/checkpoint.h"

namespace hydraulis::reliability {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr int kSteps = 4;

class CheckpointFaults : public testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.file("web");
    const std::string input = dir_.file("web.jsonl");
    write_text(input, corpus_lines("web", 60));
    Child prepare = spawn(prepare_args(input, data_), dir_.file("prepare.log"));
    ASSERT_EQ(wait_child(prepare), 0) << read_text(prepare.log_path);
    // The uninterrupted reference, checkpointing every step: its losses, and its step-1
    // checkpoint as the "previous" checkpoint of every fault run.
    reference_ = dir_.file("reference");
    Child run = spawn(train_args(reference_, dir_.file("reference.jsonl"), 1, false),
                      dir_.file("reference.log"));
    ASSERT_EQ(wait_child(run), 0) << read_text(run.log_path);
    losses_ = losses(dir_.file("reference.jsonl"));
    ASSERT_EQ(losses_.size(), size_t(kSteps));
    previous_file_ = reference_ + "/step-00000001/checkpoint.hcp";
    previous_crc_ = file_crc(previous_file_);
  }

  std::vector<std::string> train_args(const std::string& dir, const std::string& metrics,
                                      int every, bool resume) const {
    std::vector<std::string> args = {hydraulis_binary(), "train", "--model", "tiny", "--data",
                                     data_, "--steps", std::to_string(kSteps),
                                     "--global-token-num", "256", "--max-seq-len", "64", "--lr",
                                     "3e-3", "--checkpoint-dir", dir, "--checkpoint-every",
                                     std::to_string(every), "--keep-checkpoints", "8",
                                     "--metrics", metrics};
    if (resume) args.push_back("--resume");
    return args;
  }

  static std::vector<double> losses(const std::string& metrics) {
    std::vector<double> out;
    std::string text = read_text(metrics), line;
    for (size_t begin = 0; begin < text.size();) {
      const size_t end = text.find('\n', begin);
      line = text.substr(begin, end - begin);
      begin = end == std::string::npos ? text.size() : end + 1;
      auto json = core::parse_json(line, metrics);
      if (json.is_ok()) out.push_back((*json)["loss"].get<double>());
    }
    return out;
  }

  static uint32_t file_crc(const std::string& path) {
    const std::string bytes = read_text(path);
    return core::crc32c(bytes.data(), bytes.size());
  }

  // A checkpoint directory holding only the reference's step 1 (the previous checkpoint).
  std::string fresh_checkpoint_dir(const std::string& name) const {
    const std::string dir = dir_.file(name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy(reference_ + "/step-00000001", dir + "/step-00000001");
    write_text(dir + "/latest", "step-00000001\n");
    // The metrics of step 1, as the run that wrote the checkpoint left them.
    const std::string metrics = read_text(dir_.file("reference.jsonl"));
    write_text(dir + ".jsonl", metrics.substr(0, metrics.find('\n') + 1));
    return dir;
  }

  // Every committed step directory verifies (every tensor's chunks), the one `latest` names
  // among them; the previous checkpoint is unchanged. Returns latest's step.
  int64_t expect_valid(const std::string& dir) const {
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      if (name == "latest" || name.find(".tmp.") != std::string::npos) continue;
      auto reader = train::CheckpointReader::open(entry.path().string() + "/checkpoint.hcp");
      EXPECT_TRUE(reader.is_ok()) << name << ": " << reader.status().message();
      if (!reader.is_ok()) continue;
      for (size_t t = 0; t < reader->tensors().size(); ++t) {
        auto tensor = reader->read(t);
        EXPECT_TRUE(tensor.is_ok()) << tensor.status().message();
        if (!tensor.is_ok()) break;
      }
    }
    EXPECT_EQ(file_crc(dir + "/step-00000001/checkpoint.hcp"), previous_crc_)
        << "the previous checkpoint changed";
    auto latest = train::resolve_checkpoint(dir);
    EXPECT_TRUE(latest.is_ok()) << latest.status().message();
    if (!latest.is_ok()) return -1;
    auto reader = train::CheckpointReader::open(*latest);
    EXPECT_TRUE(reader.is_ok()) << reader.status().message();
    return reader.is_ok() ? reader->state().step : -1;
  }

  // --resume from `dir` to the end: the losses of every step equal the reference's.
  void expect_resume_matches(const std::string& dir) const {
    const std::string metrics = dir + ".jsonl";
    Child run = spawn(train_args(dir, metrics, 0, true), dir + ".resume.log");
    ASSERT_EQ(wait_child(run), 0) << read_text(run.log_path);
    EXPECT_EQ(losses(metrics), losses_) << read_text(metrics);
  }

  ScratchDir dir_;
  std::string data_, reference_, previous_file_;
  uint32_t previous_crc_ = 0;
  std::vector<double> losses_;
};

// SIGKILL while step 2's checkpoint is written: a seeded random point between the temp step
// directory's appearance and its rename (timed by one uninterrupted run).
TEST_F(CheckpointFaults, SigkillDuringTheWriteKeepsThePreviousCheckpoint) {
  // Timing run.
  const std::string timing = fresh_checkpoint_dir("timing");
  Child run = spawn(train_args(timing, timing + ".jsonl", 1, true), dir_.file("timing.log"));
  const std::string temp = timing + "/step-00000002.tmp." + std::to_string(run.pid);
  int status = 0;
  while (!fs::exists(temp) && !child_exited(run, status)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto write_start = Clock::now();
  while (!fs::exists(timing + "/step-00000002") && !child_exited(run, status)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int64_t write_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - write_start).count();
  ::kill(run.pid, SIGKILL);
  wait_child(run);
  ASSERT_GT(write_ms, 0);

  std::mt19937 random(20261201);
  std::uniform_int_distribution<int64_t> delay(0, write_ms);
  int injected = 0, kept_previous = 0;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::string dir = fresh_checkpoint_dir("kill" + std::to_string(attempt));
    const int64_t wait_ms = delay(random);
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ": kill " << wait_ms
                                    << " ms into a " << write_ms << " ms write");
    Child child = spawn(train_args(dir, dir + ".jsonl", 1, true), dir + ".log");
    const std::string child_temp = dir + "/step-00000002.tmp." + std::to_string(child.pid);
    while (!fs::exists(child_temp) && !child_exited(child, status)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    if (child_exited(child, status)) continue;
    ::kill(child.pid, SIGKILL);
    status = wait_child(child);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) continue;
    ++injected;
    const int64_t latest = expect_valid(dir);
    EXPECT_TRUE(latest == 1 || latest == 2) << latest;
    kept_previous += latest == 1;
    if (attempt == 0) expect_resume_matches(dir);  // the next start resumes from it
  }
  EXPECT_GE(injected, 4);
  EXPECT_GE(kept_previous, 1) << "no kill landed inside a write";
  if (std::getenv("HYD_VERBOSE") != nullptr) {
    std::fprintf(stderr, "SIGKILL: %d injected over a %lld ms write, %d kept step 1 as latest\n",
                 injected, static_cast<long long>(write_ms), kept_previous);
  }
}

// SIGTERM at random points of a resumed run (start-up, training, checkpoint writes): it either
// dies by the default action before the handler exists, or finishes its current step, writes its
// checkpoint and exits non-zero naming it; every checkpoint verifies and a resume completes the
// run with the reference's losses. The first attempt waits for the first resumed step's progress
// line, so at least one signal reaches the handler on a machine of any speed (with a fixed delay
// all three landed in a slow start-up once, on a loaded 2-core box).
TEST_F(CheckpointFaults, SigtermCheckpointsTheStepAndResumes) {
  std::mt19937 random(77);
  std::uniform_int_distribution<int64_t> delay(0, 4000);
  int handled = 0, injected = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::string dir = fresh_checkpoint_dir("term" + std::to_string(attempt));
    const int64_t wait_ms = delay(random);
    SCOPED_TRACE(testing::Message() << "attempt " << attempt << ": SIGTERM after " << wait_ms
                                    << " ms");
    Child child = spawn(train_args(dir, dir + ".jsonl", 1, true), dir + ".log");
    int status = 0;
    bool exited = false;
    if (attempt == 0) {
      // Once the first resumed step is printed the handler is installed (it is before the first
      // step), so this SIGTERM must go through it however slow the machine is.
      const auto deadline = Clock::now() + std::chrono::seconds(120);
      while (read_text(dir + ".log").find("step 2/4") == std::string::npos &&
             Clock::now() < deadline && !(exited = child_exited(child, status))) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
    if (exited || child_exited(child, status)) continue;
    ::kill(child.pid, SIGTERM);
    status = wait_child(child);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;  // finished first
    ++injected;
    const std::string log = read_text(dir + ".log");
    const int64_t latest = expect_valid(dir);
    if (WIFEXITED(status)) {
      ++handled;
      EXPECT_EQ(WEXITSTATUS(status), 1) << log;
      const std::string step = std::to_string(latest);
      EXPECT_NE(log.find("stopped by SIGTERM after step " + step + " of 4; checkpoint " + dir +
                         "/" + train::step_directory_name(latest) + " written: continue with "
                         "--resume"),
                std::string::npos)
          << log;
      for (const auto& entry : fs::directory_iterator(dir)) {
        EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
      }
    } else {
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
    }
    expect_resume_matches(dir);
  }
  EXPECT_GE(injected, 2);
  EXPECT_GE(handled, 1) << "no SIGTERM reached the handler";
  if (std::getenv("HYD_VERBOSE") != nullptr) {
    std::fprintf(stderr, "SIGTERM: %d injected, %d through the handler\n", injected, handled);
  }
}

// A full disk (RLIMIT_FSIZE) while step 2's checkpoint is written: in the header/metadata, in
// the first tensor, midway, in the last chunk and at the footer's final flush. The run fails
// naming the checkpoint and "disk full?", leaves no temp directory, and the previous checkpoint
// stays `latest`, unchanged.
TEST_F(CheckpointFaults, DiskFullKeepsThePreviousCheckpoint) {
  // The size step 2's checkpoint has (its metadata may differ in length from step 1's).
  const uint64_t size = *core::file_size(reference_ + "/step-00000002/checkpoint.hcp");
  int faults = 0;
  for (uint64_t limit : {uint64_t{3000}, uint64_t{1} << 20, size / 2, size - 5000, size - 8}) {
    SCOPED_TRACE(testing::Message() << "file size limit " << limit << " of " << size);
    const std::string dir = fresh_checkpoint_dir("full" + std::to_string(faults));
    Child child = spawn(train_args(dir, dir + ".jsonl", 1, true), dir + ".log", limit);
    const int status = wait_child(child);
    const std::string log = read_text(dir + ".log");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << log;
    EXPECT_NE(log.find("disk full?"), std::string::npos) << log;
    EXPECT_NE(log.find("step-00000002.tmp."), std::string::npos) << log;
    EXPECT_EQ(expect_valid(dir), 1);
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-00000001"}));
    ++faults;
  }
  // With room again, the run resumes and finishes with the reference's losses.
  expect_resume_matches(dir_.file("full0"));
  EXPECT_EQ(faults, 5);
}

// A real full disk (ENOSPC): a tmpfs holding the previous checkpoint with room for about half of
// the next one. Runs where mount(2) is permitted (root with CAP_SYS_ADMIN), else skipped.
TEST_F(CheckpointFaults, DiskFullOnTmpfsKeepsThePreviousCheckpoint) {
  const std::string mount_point = dir_.file("tmpfs");
  fs::create_directories(mount_point);
  const uint64_t size = *core::file_size(previous_file_);
  const std::string options = "size=" + std::to_string(size + size / 2);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    GTEST_SKIP() << "mount -t tmpfs not permitted here (" << std::strerror(errno)
                 << "); DiskFullKeepsThePreviousCheckpoint covers the same paths with "
                    "RLIMIT_FSIZE";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};
  const std::string dir = mount_point + "/ck";
  fs::create_directories(dir);
  fs::copy(reference_ + "/step-00000001", dir + "/step-00000001");
  write_text(dir + "/latest", "step-00000001\n");
  // The metrics live outside the tmpfs, so the checkpoint is what fills it.
  const std::string metrics = dir_.file("tmpfs_ck.jsonl");
  const std::string reference_metrics = read_text(dir_.file("reference.jsonl"));
  write_text(metrics, reference_metrics.substr(0, reference_metrics.find('\n') + 1));
  std::vector<std::string> args = train_args(dir, metrics, 1, true);
  Child child = spawn(args, dir_.file("tmpfs.log"));
  const int status = wait_child(child);
  const std::string log = read_text(dir_.file("tmpfs.log"));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << log;
  EXPECT_NE(log.find("disk full?"), std::string::npos) << log;
  EXPECT_EQ(expect_valid(dir), 1);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-00000001"}));
  // The surviving checkpoint, moved to a disk with room, resumes to the reference's losses.
  const std::string moved = dir_.file("tmpfs_ck");
  fs::copy(dir, moved, fs::copy_options::recursive);
  expect_resume_matches(moved);
}

}  // namespace
}  // namespace hydraulis::reliability
