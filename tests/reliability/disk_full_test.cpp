// Disk full during AtomicFile writes and during `hydraulis data prepare`: the previous output
// still verifies byte for byte and no valid-looking partial file (nor a temp file) is left.
// Two ways to fill the disk: RLIMIT_FSIZE in a child process (EFBIG, no privileges, always runs)
// and a tmpfs of a few hundred KB (ENOSPC; runs where mount(2) is permitted, else skipped).
// Docs: docs/reliability.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/file.h"
#include "data/indexed_dataset.h"
#include "tests/reliability/fault_util.h"

namespace hydraulis::reliability {
namespace {

enum class WriteShape { kOneWrite, kChunks };

// Child exit codes of write_under_limit().
constexpr int kFailedCleanly = 0;
constexpr int kSucceeded = 1;
constexpr int kNoDiskHint = 2;

// In a child under RLIMIT_FSIZE = limit, atomically replaces `path` with `contents`.
int write_under_limit(const std::string& path, const std::string& contents, uint64_t limit,
                      WriteShape shape) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {
      limit, limit
    };
    ::setrlimit(RLIMIT_FSIZE, &rl);
    // The AtomicFile is destroyed (its temp file removed) before the child exits, as in a
    // program that returns the error.
    const int code = [&] {
      auto file = core::AtomicFile::create(path);
      if (!file.is_ok()) return kNoDiskHint;
      core::Status status;
      const size_t chunk = shape == WriteShape::kOneWrite ? contents.size() : 1000;
      for (size_t pos = 0; pos < contents.size() && status.is_ok(); pos += chunk) {
        status = file->write(std::string_view(contents).substr(pos, chunk));
      }
      if (status.is_ok()) status = file->commit();
      if (status.is_ok()) return kSucceeded;
      return status.message().find("disk full") != std::string::npos ? kFailedCleanly : kNoDiskHint;
    }();
    ::_exit(code);
  }
  int wait_status = 0;
  ::waitpid(pid, &wait_status, 0);
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 100 + WTERMSIG(wait_status);
}

TEST(DiskFull, AtomicFileKeepsThePreviousFile) {
  ScratchDir dir;
  const std::string path = dir.file("state.json");
  const std::string previous = corpus_lines("web", 2);
  ASSERT_TRUE(core::write_file_atomic(path, previous).is_ok());
  int faults = 0;
  // Limits below, at and above the stdio buffer (4096): the failure surfaces in write() or only
  // in commit()'s flush.
  for (uint64_t limit : {1u, 100u, 4095u, 4096u, 4097u, 20000u}) {
    for (uint64_t extra : {1u, 50u, 3000u, 100000u}) {
      for (WriteShape shape : {WriteShape::kOneWrite, WriteShape::kChunks}) {
        const std::string contents(limit + extra, 'x');
        SCOPED_TRACE(testing::Message() << "limit " << limit << ", " << contents.size()
                                        << " bytes, chunks " << (shape == WriteShape::kChunks));
        EXPECT_EQ(write_under_limit(path, contents, limit, shape), kFailedCleanly);
        EXPECT_EQ(read_text(path), previous);
        EXPECT_EQ(files_with_prefix(dir.path(), "state"), std::vector<std::string>{"state.json"});
        ++faults;
      }
    }
  }
  EXPECT_EQ(faults, 48);
  // The same write with room succeeds (the limit, not the code, made the others fail).
  EXPECT_EQ(write_under_limit(path, std::string(5000, 'y'), 1 << 20, WriteShape::kChunks),
            kSucceeded);
  EXPECT_EQ(read_text(path), std::string(5000, 'y'));
}

// Documents that are single words of a real document: ~1 token each, so P.idx (20 bytes per
// document) is ten times P.bin (2 bytes per token) and a limit between the two fails the index.
std::string tiny_documents(size_t n) {
  const std::string text = corpus_lines("code", 40);
  std::string out;
  size_t count = 0;
  for (size_t pos = 0; count < n && pos < text.size();) {
    const size_t start = text.find_first_of("abcdefghijklmnopqrstuvwxyz", pos);
    if (start == std::string::npos) break;
    size_t end = text.find_first_not_of("abcdefghijklmnopqrstuvwxyz", start);
    if (end == std::string::npos) end = text.size();
    out += "{\"content\": \"" + text.substr(start, end - start) + "\"}\n";
    ++count;
    pos = end;
  }
  EXPECT_EQ(count, n) << "not enough words in data/corpora/code.jsonl";
  return out;
}

struct PrepareFault {
  std::string name;
  std::string input;  // JSONL text of the new corpus
  uint64_t limit;     // RLIMIT_FSIZE of the run
};

// Runs `data prepare` of each fault over a previous dataset at the same prefix `output/data`
// (inputs and logs in `work`).
void expect_prepare_failures_keep_previous(const std::string& work, const std::string& output,
                                           const std::vector<PrepareFault>& faults) {
  const std::string prefix = output + "/data";
  const std::string previous_input = work + "/previous.jsonl";
  write_text(previous_input, corpus_lines("web", 4));
  Child first = spawn(prepare_args(previous_input, prefix), work + "/first.log");
  ASSERT_EQ(wait_child(first), 0) << read_text(first.log_path);
  const auto previous = read_dataset(prefix);
  ASSERT_EQ(previous.size(), 4u);
  const std::string previous_idx = read_text(data::idx_path(prefix));
  const std::string previous_bin = read_text(data::bin_path(prefix));
  const std::string previous_sum = read_text(data::sum_path(prefix));
  for (const PrepareFault& fault : faults) {
    SCOPED_TRACE(fault.name);
    const std::string input = work + "/" + fault.name + ".jsonl";
    write_text(input, fault.input);
    Child run = spawn(prepare_args(input, prefix), work + "/" + fault.name + ".log", fault.limit);
    const int status = wait_child(run);
    const std::string log = read_text(run.log_path);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "status " << status << "\n"
                                                               << log;
    EXPECT_NE(log.find("disk full"), std::string::npos) << log;
    EXPECT_TRUE(read_dataset(prefix) == previous) << "the previous dataset changed";
    EXPECT_TRUE(read_text(data::idx_path(prefix)) == previous_idx) << "P.idx changed";
    EXPECT_TRUE(read_text(data::bin_path(prefix)) == previous_bin) << "P.bin changed";
    EXPECT_TRUE(read_text(data::sum_path(prefix)) == previous_sum) << "P.sum changed";
    EXPECT_EQ(files_with_prefix(output, "data"),
              (std::vector<std::string>{"data.bin", "data.idx", "data.sum"}));
  }
}

TEST(DiskFull, PrepareKeepsThePreviousDataset) {
  ScratchDir dir;
  const std::string big = corpus_lines("web", 200, 10);  // ~1 MB of JSON, ~0.5 MB of tokens
  expect_prepare_failures_keep_previous(
      dir.path(), dir.path(),
      {
          {"bin_at_start", big, 4096},                  // P.bin fails on its first flush
          {"bin_midway", big, 200000},                  // P.bin fails after many documents
          {"idx_large", tiny_documents(3000), 30000},   // P.bin fits (~6 KB), P.idx (60 KB) not
          {"idx_buffered", tiny_documents(150), 1500},  // P.idx (3 KB) fails only at its flush
      });
}

// A tmpfs of 256 KB holding the previous dataset; the new one does not fit (ENOSPC).
TEST(DiskFull, PrepareOnFullTmpfs) {
  ScratchDir dir;
  const std::string mount_point = dir.file("tmpfs");
  ASSERT_TRUE(core::make_directories(mount_point).is_ok());
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=256k") != 0) {
    GTEST_SKIP() << "mount -t tmpfs not permitted here (" << std::strerror(errno)
                 << "); DiskFull.PrepareKeepsThePreviousDataset covers the same paths with "
                    "RLIMIT_FSIZE";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mount_point};
  expect_prepare_failures_keep_previous(
      dir.path(), mount_point, {{"tmpfs_bin", corpus_lines("web", 200, 10), uint64_t{1} << 40}});
}

}  // namespace
}  // namespace hydraulis::reliability
