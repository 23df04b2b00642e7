// P.sum: the layout written by IndexedDatasetWriter (parsed here by hand from docs/formats.md),
// chunk CRCs fed in pieces against one CRC per chunk, a multi-chunk byte range in the error,
// truncated/extended files, a damaged P.sum, and every state the writer's rename order can leave
// after a crash. The exhaustive byte flips of a real dataset:
// tests/reliability/corruption_test.cpp.
#include "data/dataset_sum.h"

#include <gtest/gtest.h>

#include "data_test_util.h"
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/crc32c.h"
#include "core/file.h"
#include "data/indexed_dataset.h"

namespace hydraulis::data {
namespace {

namespace fs = std::filesystem;

template <typename T>
T at(const std::string& bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

class DatasetSumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("hyd_sum_test_{}_{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    prefix_ = (dir_ / "ds").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `documents` to `prefix` with the real writer.
  void write_dataset(const std::string& prefix,
                     const std::vector<std::vector<int32_t>>& documents) {
    auto writer = IndexedDatasetWriter::create(prefix, TokenDType::kU16);
    ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
    for (const auto& ids : documents) ASSERT_TRUE(writer->add_document(ids).is_ok());
    ASSERT_TRUE(writer->finish().is_ok());
  }
  std::string read(const std::string& path) { return core::read_file(path).value(); }
  void write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  }
  std::vector<std::vector<int32_t>> read_all() {
    auto ds = IndexedDataset::open(prefix_);
    EXPECT_TRUE(ds.is_ok()) << ds.status().to_string();
    std::vector<std::vector<int32_t>> out;
    if (ds.is_ok()) {
      for (uint64_t s = 0; s < ds->num_sequences(); ++s) out.push_back(ds->tokens(s));
    }
    return out;
  }
  // Expects open() to fail with DataLoss and a message holding every fragment.
  void expect_data_loss(const std::vector<std::string>& fragments) {
    test_util::expect_data_loss(prefix_, fragments);
  }

  fs::path dir_;
  std::string prefix_;
  const std::vector<std::vector<int32_t>> small_ = {{1, 2, 3}, {65535}, {7, 8}};
};

// The 44-byte P.sum of the 12-byte P.bin and 102-byte P.idx of docs/formats.md's example.
TEST_F(DatasetSumTest, WriterWritesTheDocumentedLayout) {
  write_dataset(prefix_, small_);
  const std::string bin = read(bin_path(prefix_));
  const std::string idx = read(idx_path(prefix_));
  const std::string sum = read(sum_path(prefix_));
  ASSERT_EQ(sum.size(), 32u + 4 + 4 + 4);
  EXPECT_EQ(sum.substr(0, 8), std::string("HYDDSUM\0", 8));
  EXPECT_EQ(at<uint32_t>(sum, 8), 1u);         // version
  EXPECT_EQ(at<uint32_t>(sum, 12), 1u << 20);  // chunk bytes
  EXPECT_EQ(at<uint64_t>(sum, 16), 12u);       // P.bin size
  EXPECT_EQ(at<uint64_t>(sum, 24), 102u);      // P.idx size
  EXPECT_EQ(at<uint32_t>(sum, 32), core::crc32c(bin.data(), bin.size()));
  EXPECT_EQ(at<uint32_t>(sum, 36), core::crc32c(idx.data(), idx.size()));
  EXPECT_EQ(at<uint32_t>(sum, 40), core::crc32c(sum.data(), 40));
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  ASSERT_TRUE(ds->sum_check().has_value());
  EXPECT_EQ(ds->sum_check()->bin_chunks, 1u);
  EXPECT_EQ(ds->sum_check()->idx_chunks, 1u);
}

// Chunk CRCs fed in odd pieces equal one crc32c per whole chunk (the slow, obvious twin).
TEST_F(DatasetSumTest, ChunkCrcsOfPiecesEqualCrcsOfWholeChunks) {
  std::string data(5000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131 + i / 7);
  ChunkCrcs crcs(1024);
  for (size_t pos = 0, piece = 1; pos < data.size(); pos += piece, piece = piece * 3 % 1500 + 1) {
    crcs.update(data.data() + pos, std::min(piece, data.size() - pos));
  }
  std::vector<uint32_t> expected;
  for (size_t begin = 0; begin < data.size(); begin += 1024) {
    expected.push_back(
        core::crc32c(data.data() + begin, std::min<size_t>(1024, data.size() - begin)));
  }
  EXPECT_EQ(crcs.crcs(), expected);
  EXPECT_EQ(crcs.total_bytes(), 5000u);
}

// A P.bin of 2,600,000 bytes has 3 chunks; a byte flipped in the third is named with its range.
TEST_F(DatasetSumTest, BadChunkIsNamedWithItsByteRange) {
  std::vector<std::vector<int32_t>> documents(13, std::vector<int32_t>(100000));
  for (size_t d = 0; d < documents.size(); ++d) {
    for (size_t i = 0; i < documents[d].size(); ++i) documents[d][i] = (d * 7919 + i) % 50257;
  }
  write_dataset(prefix_, documents);
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  EXPECT_EQ(ds->sum_check()->bin_chunks, 3u);
  std::string bin = read(bin_path(prefix_));
  ASSERT_EQ(bin.size(), 2600000u);
  bin[2 * 1048576 + 5] ^= 0x10;
  write(bin_path(prefix_), bin);
  expect_data_loss({"ds.bin: bytes [2097152, 2600000) (chunk 2)", "CRC32C expected",
                    "re-run `hydraulis data prepare`", "delete " + sum_path(prefix_)});
}

TEST_F(DatasetSumTest, TruncatedOrExtendedFilesAreRefused) {
  write_dataset(prefix_, small_);
  const std::string bin = read(bin_path(prefix_));
  const std::string idx = read(idx_path(prefix_));
  write(bin_path(prefix_), bin.substr(0, bin.size() - 1));
  expect_data_loss({"ds.bin: size: expected 12 bytes (recorded in", "found 11 (truncated)"});
  write(bin_path(prefix_), bin + "xy");
  expect_data_loss({"ds.bin: size: expected 12 bytes", "found 14 (extended)"});
  write(bin_path(prefix_), bin);
  write(idx_path(prefix_), idx.substr(0, idx.size() - 8));
  expect_data_loss({"ds.idx: size: expected 102 bytes", "found 94 (truncated)"});
  write(idx_path(prefix_), idx + std::string(8, '\0'));
  expect_data_loss({"ds.idx: size: expected 102 bytes", "found 110 (extended)"});
  write(idx_path(prefix_), idx);
  EXPECT_EQ(read_all(), small_);
}

// Every byte of P.sum flipped (its own CRC, or magic/version first), truncated or extended.
TEST_F(DatasetSumTest, DamagedSumFileIsRefused) {
  write_dataset(prefix_, small_);
  const std::string sum = read(sum_path(prefix_));
  int refused = 0;
  for (size_t byte = 0; byte < sum.size(); ++byte) {
    for (int mask : {0x01, 0x80, 0xff}) {
      std::string bad = sum;
      bad[byte] = static_cast<char>(bad[byte] ^ mask);
      write(sum_path(prefix_), bad);
      auto opened = IndexedDataset::open(prefix_);
      ASSERT_FALSE(opened.is_ok()) << "byte " << byte << " xor " << mask;
      EXPECT_EQ(opened.status().code(), core::StatusCode::kDataLoss);
      const std::string& message = opened.status().message();
      EXPECT_NE(message.find("ds.sum: "), std::string::npos) << message;
      const char* field = byte < 8 ? "magic" : byte < 12 ? "version" : "checksum of bytes [0, 40)";
      EXPECT_NE(message.find(field), std::string::npos) << "byte " << byte << ": " << message;
      refused += !opened.is_ok();
    }
  }
  EXPECT_EQ(refused, 3 * 44);
  write(sum_path(prefix_), sum.substr(0, 35));
  expect_data_loss({"ds.sum: size: expected at least 36 bytes, found 35"});
  write(sum_path(prefix_), sum.substr(0, 40));  // the CRCs of P.idx and the trailer cut off
  expect_data_loss({"ds.sum: "});
  write(sum_path(prefix_), sum + "x");
  expect_data_loss({"ds.sum: "});
  write(sum_path(prefix_), sum);
  EXPECT_EQ(read_all(), small_);
}

// Without P.sum (Megatron's tools) the pair opens as before; verify requires P.sum.
TEST_F(DatasetSumTest, PairWithoutSumOpensUnlessRequired) {
  write_dataset(prefix_, small_);
  fs::remove(sum_path(prefix_));
  auto ds = IndexedDataset::open(prefix_);
  ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
  EXPECT_FALSE(ds->sum_check().has_value());
  auto required = IndexedDataset::open(prefix_, SumRequirement::kRequired);
  ASSERT_FALSE(required.is_ok());
  EXPECT_EQ(required.status().code(), core::StatusCode::kNotFound);
  EXPECT_NE(required.status().message().find("ds.sum: no such file"), std::string::npos)
      << required.status().message();
}

// The writer's order (docs/formats.md): remove old P.sum, remove old P.idx, rename P.bin, rename
// P.idx, rename P.sum. Old and new datasets have the same lengths, so that a new P.bin beside an
// old P.idx would be a structurally valid pair with wrong tokens. A crash after any step must
// open the old data, the new data, or nothing; the mixtures the order rules out are refused.
TEST_F(DatasetSumTest, EveryStateBetweenTheRenamesOpensOldNewOrNothing) {
  const std::vector<std::vector<int32_t>> old_docs = {{1, 2, 3}, {4}, {5, 6}};
  const std::vector<std::vector<int32_t>> new_docs = {{9, 9, 9}, {8}, {7, 7}};
  const std::string old_prefix = (dir_ / "old").string();
  const std::string new_prefix = (dir_ / "new").string();
  write_dataset(old_prefix, old_docs);
  write_dataset(new_prefix, new_docs);
  struct Files {
    std::string bin, idx, sum;
  };
  const Files old_files{read(bin_path(old_prefix)), read(idx_path(old_prefix)),
                        read(sum_path(old_prefix))};
  const Files new_files{read(bin_path(new_prefix)), read(idx_path(new_prefix)),
                        read(sum_path(new_prefix))};
  const Files none{};
  auto place = [&](const std::string& bin, const std::string& idx, const std::string& sum) {
    for (const auto& [path, bytes] :
         {std::pair{bin_path(prefix_), &bin}, std::pair{idx_path(prefix_), &idx},
          std::pair{sum_path(prefix_), &sum}}) {
      fs::remove(path);
      if (!bytes->empty()) write(path, *bytes);
    }
  };
  enum class Expect { kOld, kNew, kNothing };
  struct State {
    const char* name;
    const std::string& bin;
    const std::string& idx;
    const std::string& sum;
    Expect expect;
  };
  const std::vector<State> protocol = {
      {"before finish", old_files.bin, old_files.idx, old_files.sum, Expect::kOld},
      {"old P.sum removed", old_files.bin, old_files.idx, none.sum, Expect::kOld},
      {"old P.idx removed", old_files.bin, none.idx, none.sum, Expect::kNothing},
      {"P.bin renamed", new_files.bin, none.idx, none.sum, Expect::kNothing},
      {"P.idx renamed", new_files.bin, new_files.idx, none.sum, Expect::kNew},
      {"P.sum renamed", new_files.bin, new_files.idx, new_files.sum, Expect::kNew},
  };
  for (const State& state : protocol) {
    SCOPED_TRACE(state.name);
    place(state.bin, state.idx, state.sum);
    auto ds = IndexedDataset::open(prefix_);
    if (state.expect == Expect::kNothing) {
      EXPECT_FALSE(ds.is_ok());
      continue;
    }
    ASSERT_TRUE(ds.is_ok()) << ds.status().to_string();
    std::vector<std::vector<int32_t>> read_back;
    for (uint64_t s = 0; s < ds->num_sequences(); ++s) read_back.push_back(ds->tokens(s));
    EXPECT_EQ(read_back, state.expect == Expect::kOld ? old_docs : new_docs);
  }
  // The orders the writer avoids: each mixture with a P.sum is refused; without one, the new
  // P.bin beside the old P.idx would be read (wrong tokens), which is why P.idx goes first.
  const std::vector<State> ruled_out = {
      {"new P.bin, old P.idx, old P.sum", new_files.bin, old_files.idx, old_files.sum,
       Expect::kNothing},
      {"old pair, new P.sum", old_files.bin, old_files.idx, new_files.sum, Expect::kNothing},
      {"new pair, old P.sum", new_files.bin, new_files.idx, old_files.sum, Expect::kNothing},
  };
  for (const State& state : ruled_out) {
    SCOPED_TRACE(state.name);
    place(state.bin, state.idx, state.sum);
    auto ds = IndexedDataset::open(prefix_);
    ASSERT_FALSE(ds.is_ok());
    EXPECT_EQ(ds.status().code(), core::StatusCode::kDataLoss) << ds.status().to_string();
  }
  place(new_files.bin, old_files.idx, none.sum);
  EXPECT_TRUE(IndexedDataset::open(prefix_).is_ok()) << "the twin of the check above is vacuous";
}

// A second writer replaces all three files; a stale P.sum.tmp.<dead pid> goes with the others.
TEST_F(DatasetSumTest, RewriteReplacesTheSum) {
  write_dataset(prefix_, small_);
  const std::string first = read(sum_path(prefix_));
  write_dataset(prefix_, {{4, 5}});
  EXPECT_NE(read(sum_path(prefix_)), first);
  EXPECT_EQ(read_all(), (std::vector<std::vector<int32_t>>{{4, 5}}));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_)) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ds.bin", "ds.idx", "ds.sum"}));
}

}  // namespace
}  // namespace hydraulis::data
