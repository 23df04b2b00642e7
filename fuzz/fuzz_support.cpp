// Scratch files and set-up shared by the fuzz targets (fuzz/fuzz_support.h).
#include "fuzz/fuzz_support.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/log.h"

namespace hydraulis::fuzz {

namespace {

class ScratchDirectory {
 public:
  ScratchDirectory() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/hydraulis-fuzz-XXXXXX";
    HYD_CHECK(::mkdtemp(pattern.data()) != nullptr, "cannot create a scratch directory {}",
              pattern);
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

const std::string& scratch_directory() {
  static ScratchDirectory directory;
  return directory.path();
}

std::string write_scratch_file(const std::string& name, std::string_view bytes) {
  std::string path = scratch_directory() + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  HYD_CHECK(fd >= 0, "cannot write scratch file {}", path);
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    HYD_CHECK(n > 0, "short write to scratch file {}", path);
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

void quiet_logs() {
  core::set_log_level(core::LogLevel::kError);
}

std::string gpt2_directory() {
  if (const char* dir = std::getenv("HYD_GPT2_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* src = std::getenv("HYD_SOURCE_DIR"); src != nullptr && *src != '\0') {
    return std::string(src) + "/data/gpt2";
  }
  return "data/gpt2";
}

}  // namespace hydraulis::fuzz
