// AtomicFile: the target is replaced only on commit; abandoned writes leave no trace.
#include "core/file.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace hydraulis::core {
namespace {

std::string temp_dir() {
  auto dir = std::filesystem::temp_directory_path() /
             ("hyd_file_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

TEST(AtomicFile, ReplacesOnlyOnCommit) {
  std::string path = temp_dir() + "/out.txt";
  ASSERT_TRUE(write_file_atomic(path, "old").is_ok());
  {
    auto file = AtomicFile::create(path);
    ASSERT_TRUE(file.is_ok());
    ASSERT_TRUE(file->write("new contents").is_ok());
    EXPECT_EQ(read_file(path).value(), "old");  // not visible before commit
    // destroyed without commit
  }
  EXPECT_EQ(read_file(path).value(), "old");
  EXPECT_FALSE(file_exists(path + ".tmp." + std::to_string(::getpid())));
  auto file = AtomicFile::create(path);
  ASSERT_TRUE(file->write("new").is_ok());
  ASSERT_TRUE(file->commit().is_ok());
  EXPECT_EQ(read_file(path).value(), "new");
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(AtomicFile, ClearErrors) {
  auto missing_dir = AtomicFile::create("/nonexistent_dir_hyd/x.bin");
  ASSERT_FALSE(missing_dir.is_ok());
  EXPECT_NE(missing_dir.status().message().find("does not exist"), std::string::npos);
  auto missing = read_file("/nonexistent_dir_hyd/x.bin");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace hydraulis::core
