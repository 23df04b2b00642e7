// Helpers of the fault-injection tests: scratch directories, spawning the real `hydraulis`
// binary (found through $HYD_BINARY_DIR, set by ctest) with an optional file-size limit, and
// reading whole datasets for before/after comparisons. Docs: docs/reliability.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hydraulis::reliability {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string source_dir();        // $HYD_SOURCE_DIR, else "."
std::string hydraulis_binary();  // $HYD_BINARY_DIR/bin/hydraulis, else build/bin/hydraulis
std::string gpt2_vocab();
std::string gpt2_merges();

// The `data prepare` arguments for `input` -> `prefix` (1 worker, quiet).
std::vector<std::string> prepare_args(const std::string& input, const std::string& prefix);

// A spawned process: stdout and stderr go to `log_path`. With `file_size_limit`, the child runs
// under RLIMIT_FSIZE of that many bytes with SIGXFSZ ignored, so a write past it fails with EFBIG
// exactly as a full disk fails with ENOSPC (no privileges needed).
struct Child {
  pid_t pid = -1;
  std::string log_path;
};
Child spawn(const std::vector<std::string>& args, const std::string& log_path,
            std::optional<uint64_t> file_size_limit = std::nullopt);
// waitpid(); returns the raw wait status.
int wait_child(const Child& child);
// True once the child has exited (reaps it and stores its wait status).
bool child_exited(const Child& child, int& wait_status);
std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& text);

// Every sequence of the dataset at `prefix` (the test fails when it does not open).
std::vector<std::vector<int32_t>> read_dataset(const std::string& prefix);
// Files in `directory` whose name starts with `stem`, sorted.
std::vector<std::string> files_with_prefix(const std::string& directory, const std::string& stem);
// The first `n` records of a demo corpus (real text; data/corpora is made by scripts/setup.sh).
std::string corpus_lines(const std::string& corpus, size_t n, size_t skip = 0);

}  // namespace hydraulis::reliability
