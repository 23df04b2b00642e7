// MMIDIDX writer/reader: round trips, the exact byte layout of Megatron-LM's .idx (parsed here
// by hand from docs/formats.md), atomic appearance, and every corruption the reader must name.
// The corruption tests remove P.sum first: they test the structural rules, which are all a pair
// written by Megatron's tools (no P.sum) gets; with P.sum the checksum refuses them first
// (tests/data/dataset_sum_test.cpp).
#include "data/indexed_dataset.h"

#include <gtest/gtest.h>

#include "data_test_util.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/file.h"
#include "core/log.h"

namespace hydraulis::data {
namespace {

namespace fs = std::filesystem;

class IndexedDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("hyd_idx_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prefix_ = (dir_ / "ds").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Three sequences {1,2,3}, {65535}, {7,8} as uint16.
  void write_small() {
    auto writer = IndexedDatasetWriter::create(prefix_, TokenDType::kU16);
    ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
    ASSERT_TRUE(writer->add_document(std::vector<int32_t>{1, 2, 3}).is_ok());
    ASSERT_TRUE(writer->add_document(std::vector<int32_t>{65535}).is_ok());
    ASSERT_TRUE(writer->add_document(std::vector<int32_t>{7, 8}).is_ok());
    ASSERT_TRUE(writer->finish().is_ok());
  }
  // The same pair as Megatron's tools leave it: without P.sum.
  void write_small_without_sum() {
    write_small();
    ASSERT_TRUE(fs::remove(sum_path(prefix_)));
  }

  std::string read(const std::string& path) { return core::read_file(path).value(); }
  void write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  // Expects open() to fail with DataLoss and a message holding every fragment.
  void expect_data_loss(const std::vector<std::string>& fragments) {
    test_util::expect_data_loss(prefix_, fragments);
  }

  fs::path dir_;
  std::string prefix_;
};

template <typename T>
T at(const std::string& bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

TEST_F(IndexedDatasetTest, RoundTripU16) {
  write_small();
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  EXPECT_EQ(ds->dtype(), TokenDType::kU16);
  EXPECT_EQ(ds->num_sequences(), 3u);
  EXPECT_EQ(ds->num_documents(), 3u);
  EXPECT_EQ(ds->num_tokens(), 6u);
  EXPECT_EQ(std::vector<int32_t>(ds->lengths().begin(), ds->lengths().end()),
            (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(ds->tokens(0), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ds->tokens(1), (std::vector<int32_t>{65535}));
  EXPECT_EQ(ds->tokens(2), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(ds->pointer(2), 8);
  EXPECT_EQ(ds->document_index(3), 3);
}

TEST_F(IndexedDatasetTest, RoundTripI32AndEmptySequence) {
  auto writer = IndexedDatasetWriter::create(prefix_, token_dtype_for_vocab(100000));
  ASSERT_TRUE(writer.is_ok());
  ASSERT_TRUE(writer->add_document(std::vector<int32_t>{99999, 0, 70000}).is_ok());
  ASSERT_TRUE(writer->add_document(std::vector<int32_t>{}).is_ok());
  ASSERT_TRUE(writer->add_document(std::vector<int32_t>{5}).is_ok());
  ASSERT_TRUE(writer->finish().is_ok());
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  EXPECT_EQ(ds->dtype(), TokenDType::kI32);
  EXPECT_EQ(ds->tokens(0), (std::vector<int32_t>{99999, 0, 70000}));
  EXPECT_TRUE(ds->tokens(1).empty());
  EXPECT_EQ(ds->tokens(2), (std::vector<int32_t>{5}));
  EXPECT_EQ(core::file_size(bin_path(prefix_)).value(), 16u);
}

TEST_F(IndexedDatasetTest, DtypeForVocab) {
  EXPECT_EQ(token_dtype_for_vocab(50257), TokenDType::kU16);
  EXPECT_EQ(token_dtype_for_vocab(65535), TokenDType::kU16);
  EXPECT_EQ(token_dtype_for_vocab(65536), TokenDType::kI32);
}

TEST_F(IndexedDatasetTest, RejectsIdOutsideU16) {
  auto writer = IndexedDatasetWriter::create(prefix_, TokenDType::kU16);
  ASSERT_TRUE(writer.is_ok());
  core::Status status = writer->add_document(std::vector<int32_t>{1, 65536});
  EXPECT_EQ(status.code(), core::StatusCode::kOutOfRange);
  EXPECT_NE(status.message().find("token 1 has id 65536"), std::string::npos) << status.message();
}

// The .idx layout, byte by byte, as Megatron-LM's _IndexWriter writes it.
TEST_F(IndexedDatasetTest, IndexBytesMatchMegatronLayout) {
  write_small();
  const std::string idx = read(idx_path(prefix_));
  ASSERT_EQ(idx.size(), 34u + 3 * 4 + 3 * 8 + 4 * 8);
  EXPECT_EQ(idx.substr(0, 9), std::string("MMIDIDX\0\0", 9));
  EXPECT_EQ(at<uint64_t>(idx, 9), 1u);   // version
  EXPECT_EQ(at<uint8_t>(idx, 17), 8u);   // dtype code: uint16
  EXPECT_EQ(at<uint64_t>(idx, 18), 3u);  // sequence count
  EXPECT_EQ(at<uint64_t>(idx, 26), 4u);  // document count: entries of document_indices
  EXPECT_EQ(at<int32_t>(idx, 34), 3);    // sequence_lengths
  EXPECT_EQ(at<int32_t>(idx, 38), 1);
  EXPECT_EQ(at<int32_t>(idx, 42), 2);
  EXPECT_EQ(at<int64_t>(idx, 46), 0);  // sequence_pointers, in bytes of .bin
  EXPECT_EQ(at<int64_t>(idx, 54), 6);
  EXPECT_EQ(at<int64_t>(idx, 62), 8);
  for (int64_t d = 0; d < 4; ++d) EXPECT_EQ(at<int64_t>(idx, 70 + 8 * d), d);  // document_indices
  const std::string bin = read(bin_path(prefix_));
  EXPECT_EQ(bin, std::string("\x01\x00\x02\x00\x03\x00\xff\xff\x07\x00\x08\x00", 12));
}

TEST_F(IndexedDatasetTest, FilesAppearOnlyOnFinish) {
  {
    auto writer = IndexedDatasetWriter::create(prefix_, TokenDType::kU16);
    ASSERT_TRUE(writer.is_ok());
    ASSERT_TRUE(writer->add_document(std::vector<int32_t>{1, 2}).is_ok());
    EXPECT_FALSE(core::file_exists(bin_path(prefix_)));
    EXPECT_FALSE(core::file_exists(idx_path(prefix_)));
    EXPECT_FALSE(core::file_exists(sum_path(prefix_)));
  }  // destroyed without finish()
  EXPECT_TRUE(fs::is_empty(dir_)) << "temp files left behind";
  write_small();
  // A second writer replaces the pair only when it finishes.
  auto writer = IndexedDatasetWriter::create(prefix_, TokenDType::kU16);
  ASSERT_TRUE(writer->add_document(std::vector<int32_t>{42}).is_ok());
  EXPECT_EQ(IndexedDataset::open(prefix_)->num_sequences(), 3u);
  ASSERT_TRUE(writer->finish().is_ok());
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok());
  EXPECT_EQ(ds->tokens(0), (std::vector<int32_t>{42}));
}

TEST_F(IndexedDatasetTest, RemovesTempFilesOfDeadWriters) {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);  // `child` is now a pid that no process has
  const std::string stale = fmt::format("{}.bin.tmp.{}", prefix_, child);
  const std::string alive = fmt::format("{}.idx.tmp.{}", prefix_, ::getppid());
  const std::string stale_sum = fmt::format("{}.sum.tmp.{}", prefix_, child);
  const std::string other = fmt::format("{}/other.bin.tmp.{}", dir_.string(), child);
  for (const std::string& path : {stale, stale_sum, alive, other}) write(path, "partial");
  core::set_log_level(core::LogLevel::kWarn);  // the removal is logged at info level
  auto writer = IndexedDatasetWriter::create(prefix_, TokenDType::kU16);
  core::set_log_level(core::LogLevel::kInfo);
  ASSERT_TRUE(writer.is_ok());
  EXPECT_FALSE(core::file_exists(stale));
  EXPECT_FALSE(core::file_exists(stale_sum));
  EXPECT_TRUE(core::file_exists(alive));  // its writer may still be running
  EXPECT_TRUE(core::file_exists(other));  // another prefix
}

TEST_F(IndexedDatasetTest, MissingFilesAreNotFound) {
  auto opened = IndexedDataset::open(prefix_);
  EXPECT_EQ(opened.status().code(), core::StatusCode::kNotFound);
  write_small();
  fs::remove(bin_path(prefix_));
  opened = IndexedDataset::open(prefix_);
  EXPECT_EQ(opened.status().code(), core::StatusCode::kNotFound);
  EXPECT_NE(opened.status().message().find("ds.bin"), std::string::npos);
}

TEST_F(IndexedDatasetTest, BadMagic) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  idx[0] = 'X';
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "magic", "expected 4d 4d 49 44 49 44 58 00 00",
                    "found 58 4d 49 44 49 44 58 00 00"});
}

TEST_F(IndexedDatasetTest, WrongVersion) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  idx[9] = 2;
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "version", "expected 1", "found 2"});
}

TEST_F(IndexedDatasetTest, UnknownDtypeCode) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  idx[17] = 6;  // float64
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "dtype code", "found 6"});
}

TEST_F(IndexedDatasetTest, TruncatedIndex) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  write(idx_path(prefix_), idx.substr(0, idx.size() - 1));
  expect_data_loss({"ds.idx", "file size", "expected 102 bytes", "found 101", "truncated"});
  write(idx_path(prefix_), idx.substr(0, 20));
  expect_data_loss({"ds.idx", "header", "expected at least 34 bytes", "found 20"});
}

TEST_F(IndexedDatasetTest, TruncatedBin) {
  write_small_without_sum();
  std::string bin = read(bin_path(prefix_));
  write(bin_path(prefix_), bin.substr(0, bin.size() - 2));
  expect_data_loss({"ds.bin", "expected at least 12 bytes", "sequence 2", "found 10", "truncated"});
}

TEST_F(IndexedDatasetTest, BinWithTrailingBytes) {
  write_small_without_sum();
  write(bin_path(prefix_), read(bin_path(prefix_)) + "xy");
  expect_data_loss({"ds.bin", "expected 12 bytes", "found 14"});
}

TEST_F(IndexedDatasetTest, PointerOutOfRange) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  int64_t pointer = 1000;
  std::memcpy(idx.data() + 54, &pointer, 8);  // sequence_pointers[1]
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "sequence_pointers[1]", "expected <= 10", "found 1000"});
}

TEST_F(IndexedDatasetTest, PointerNotMonotone) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  int64_t pointer = 2;  // overlaps sequence 0, which ends at byte 6
  std::memcpy(idx.data() + 54, &pointer, 8);
  write(idx_path(prefix_), idx);
  expect_data_loss({"sequence_pointers[1]", ">= 6", "found 2"});
}

TEST_F(IndexedDatasetTest, BadDocumentIndices) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  int64_t last = 2;  // must equal the sequence count, 3
  std::memcpy(idx.data() + 70 + 24, &last, 8);
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "document_indices[3]", "expected 3", "found 2"});
}

TEST_F(IndexedDatasetTest, CorruptCountDoesNotOverflow) {
  write_small_without_sum();
  std::string idx = read(idx_path(prefix_));
  uint64_t huge = ~0ull / 4;
  std::memcpy(idx.data() + 18, &huge, 8);
  write(idx_path(prefix_), idx);
  expect_data_loss({"ds.idx", "file size", "found 102"});
}

TEST_F(IndexedDatasetTest, PrefixThatIsADirectory) {
  auto writer = IndexedDatasetWriter::create(dir_.string(), TokenDType::kU16);
  ASSERT_FALSE(writer.is_ok());
  EXPECT_NE(writer.status().message().find("is a directory"), std::string::npos);
}

}  // namespace
}  // namespace hydraulis::data
