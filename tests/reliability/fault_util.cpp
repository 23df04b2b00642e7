// Fault-test helpers (tests/reliability/fault_util.h).
#include "tests/reliability/fault_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/indexed_dataset.h"

namespace hydraulis::reliability {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace

ScratchDir::ScratchDir() {
  std::string pattern = env_or("TMPDIR", "/tmp") + "/hydraulis-reliability-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << pattern << " failed";
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string source_dir() {
  return env_or("HYD_SOURCE_DIR", ".");
}
std::string hydraulis_binary() {
  return env_or("HYD_BINARY_DIR", "build") + "/bin/hydraulis";
}
std::string gpt2_vocab() {
  return source_dir() + "/data/gpt2/vocab.json";
}
std::string gpt2_merges() {
  return source_dir() + "/data/gpt2/merges.txt";
}

std::vector<std::string> prepare_args(const std::string& input, const std::string& prefix) {
  return {hydraulis_binary(),
          "data",
          "prepare",
          "--input",
          input,
          "--vocab",
          gpt2_vocab(),
          "--merges",
          gpt2_merges(),
          "--output-prefix",
          prefix,
          "--workers",
          "1",
          "--quiet"};
}

Child spawn(const std::vector<std::string>& args, const std::string& log_path,
            std::optional<uint64_t> file_size_limit) {
  Child child;
  child.log_path = log_path;
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  child.pid = ::fork();
  if (child.pid == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    if (file_size_limit) {
      ::signal(SIGXFSZ, SIG_IGN);  // ignored dispositions survive exec
      struct rlimit limit {
        *file_size_limit, *file_size_limit
      };
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  EXPECT_GT(child.pid, 0) << "fork failed";
  return child;
}

int wait_child(const Child& child) {
  int status = 0;
  EXPECT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  return status;
}

bool child_exited(const Child& child, int& wait_status) {
  return ::waitpid(child.pid, &wait_status, WNOHANG) == child.pid;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  EXPECT_TRUE(out.good()) << "cannot write " << path;
}

std::vector<std::vector<int32_t>> read_dataset(const std::string& prefix) {
  auto dataset = data::IndexedDataset::open(prefix);
  EXPECT_TRUE(dataset.is_ok()) << dataset.status().to_string();
  std::vector<std::vector<int32_t>> sequences;
  if (!dataset.is_ok()) return sequences;
  for (uint64_t s = 0; s < dataset->num_sequences(); ++s) sequences.push_back(dataset->tokens(s));
  return sequences;
}

std::vector<std::string> files_with_prefix(const std::string& directory, const std::string& stem) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with(stem)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string corpus_lines(const std::string& corpus, size_t n, size_t skip) {
  std::ifstream in(source_dir() + "/data/corpora/" + corpus + ".jsonl");
  EXPECT_TRUE(in.good()) << "data/corpora/" << corpus << ".jsonl missing: run scripts/setup.sh";
  std::string line;
  std::string out;
  for (size_t i = 0; i < skip + n && std::getline(in, line); ++i) {
    if (i >= skip) out += line + "\n";
  }
  return out;
}

}  // namespace hydraulis::reliability
