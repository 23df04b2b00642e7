// File helpers: whole-file reads and AtomicFile, the only way src/ writes an output file.
// AtomicFile writes "<path>.tmp.<pid>", and commit() fsyncs, renames over <path> and fsyncs the
// directory, so a crash leaves either the old file or the new one, never a half-written one.
// An AtomicFile destroyed without commit() removes its temp file. Tests: tests/core/file_test.cpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "core/status.h"

namespace hydraulis::core {

StatusOr<std::string> read_file(const std::string& path);
bool file_exists(const std::string& path);
StatusOr<uint64_t> file_size(const std::string& path);
// Creates the directory and its parents (mkdir -p).
Status make_directories(const std::string& path);
// fsync of a directory: makes the creations, renames and unlinks in it durable.
Status fsync_directory(const std::string& directory);
// The same for the directory holding `path` ("." when it has none).
Status fsync_parent_directory(const std::string& path);

class AtomicFile {
 public:
  AtomicFile() = default;
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;

  // Opens the temp file next to `path`; fails if its directory is missing or not writable.
  static StatusOr<AtomicFile> create(const std::string& path);
  Status write(const void* data, size_t bytes);
  Status write(std::string_view text) { return write(text.data(), text.size()); }
  uint64_t bytes_written() const { return bytes_written_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }
  // fflush + fsync of the temp file: a full disk surfaces here, before any rename. Callers that
  // replace several files (IndexedDatasetWriter) flush all of them before touching the old ones.
  Status flush();
  // flush() + rename to the final path + fsync of the directory.
  Status commit();
  // Removes the temp file (also done by the destructor when not committed).
  void abandon();

 private:
  std::string path_;
  std::string temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t bytes_written_ = 0;
};

// Writes `contents` to `path` atomically.
Status write_file_atomic(const std::string& path, std::string_view contents);

}  // namespace hydraulis::core
