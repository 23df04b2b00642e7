// Whole-file reads and atomic writes (temp + fsync + rename + directory fsync).
#include "core/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace hydraulis::core {

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_directory(const std::string& path) {
  std::filesystem::path p(path);
  std::string parent = p.parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

Status fsync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return io_error("{}: cannot open the directory to fsync it: {}", directory, errno_text());
  }
  const bool ok = ::fsync(fd) == 0;
  const std::string why = ok ? "" : errno_text();
  ::close(fd);
  if (!ok) return io_error("{}: fsync of the directory failed: {}", directory, why);
  return Status::ok();
}

Status fsync_parent_directory(const std::string& path) {
  return fsync_directory(parent_directory(path));
}

StatusOr<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!file_exists(path)) return not_found("{}: no such file", path);
    return io_error("{}: cannot open for reading: {}", path, errno_text());
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return io_error("{}: read failed", path);
  return buffer.str();
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

StatusOr<uint64_t> file_size(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return not_found("{}: cannot stat: {}", path, errno_text());
  return static_cast<uint64_t>(st.st_size);
}

Status make_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return io_error("cannot create directory {}: {}", path, ec.message());
  return Status::ok();
}

AtomicFile::~AtomicFile() { abandon(); }

AtomicFile::AtomicFile(AtomicFile&& other) noexcept { *this = std::move(other); }

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    abandon();
    path_ = std::move(other.path_);
    temp_path_ = std::move(other.temp_path_);
    file_ = other.file_;
    bytes_written_ = other.bytes_written_;
    other.file_ = nullptr;
    other.temp_path_.clear();
  }
  return *this;
}

StatusOr<AtomicFile> AtomicFile::create(const std::string& path) {
  if (path.empty()) return invalid_argument("empty output path");
  std::string directory = parent_directory(path);
  struct stat st;
  if (::stat(directory.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return not_found("{}: output directory {} does not exist; create it first", path, directory);
  }
  AtomicFile f;
  f.path_ = path;
  f.temp_path_ = fmt::format("{}.tmp.{}", path, ::getpid());
  f.file_ = std::fopen(f.temp_path_.c_str(), "wb");
  if (f.file_ == nullptr) {
    return io_error("{}: cannot write (temp file {}): {}", path, f.temp_path_, errno_text());
  }
  return f;
}

Status AtomicFile::write(const void* data, size_t bytes) {
  if (file_ == nullptr) return internal_error("{}: write after commit/abandon", path_);
  if (bytes > 0 && std::fwrite(data, 1, bytes, file_) != bytes) {
    return io_error("{}: write of {} bytes failed after {} bytes: {} (disk full?)", temp_path_,
                    bytes, bytes_written_, errno_text());
  }
  bytes_written_ += bytes;
  return Status::ok();
}

Status AtomicFile::flush() {
  if (file_ == nullptr) return internal_error("{}: flush without an open file", path_);
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) {
    return io_error("{}: flushing {} failed after {} bytes: {} (disk full?); the previous {} is "
                    "untouched",
                    path_, temp_path_, bytes_written_, errno_text(), path_);
  }
  return Status::ok();
}

Status AtomicFile::commit() {
  if (file_ == nullptr) return internal_error("{}: commit without an open file", path_);
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  std::string why = ok ? "" : errno_text();
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok) {
    std::string tmp = temp_path_;
    abandon();
    return io_error("{}: flushing {} failed: {} (disk full?); the previous {} is untouched", path_,
                    tmp, why, path_);
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    std::string why_rename = errno_text();
    abandon();
    return io_error("{}: rename from temp file failed: {}", path_, why_rename);
  }
  temp_path_.clear();
  (void)fsync_parent_directory(path_);  // best effort: the file is already in place
  return Status::ok();
}

void AtomicFile::abandon() {
  if (file_ != nullptr) {
    std::fclose(file_);
    file_ = nullptr;
  }
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
}

Status write_file_atomic(const std::string& path, std::string_view contents) {
  HYD_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  HYD_RETURN_IF_ERROR(file.write(contents));
  return file.commit();
}

}  // namespace hydraulis::core
