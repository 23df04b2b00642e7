// Corrupted datasets. With P.sum (what `data prepare` writes): every single-byte corruption of a
// real P.bin and P.idx, token bytes included, and every truncation or extension is refused with
// DataLoss naming the file and the chunk; `hydraulis data verify` says the same. Without P.sum
// (a pair from Megatron's tools; the structural tests delete it first): every single-bit flip and
// byte inversion of P.idx and a truncated or extended P.bin; IndexedDataset::open must refuse
// exactly the files that break the MMIDIDX rules of docs/formats.md (checked by an independent,
// slow reference validator below), and files the rules still accept read back exactly as the
// rules say. Docs: docs/reliability.md.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <cstring>
#include <filesystem>
#include <optional>

#include "data/indexed_dataset.h"
#include "data/tokenizer.h"
#include "tests/reliability/fault_util.h"

namespace hydraulis::reliability {
namespace {

template <typename T>
T at(const std::string& bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

__extension__ typedef __int128 Wide;  // no overflow for any 64-bit count or pointer

// The sequences a valid MMIDIDX pair holds, or nullopt: docs/formats.md "How the reader
// validates", rules 1-7, written out directly with 128-bit arithmetic.
std::optional<std::vector<std::vector<int32_t>>> reference_read(const std::string& idx,
                                                                const std::string& bin) {
  if (idx.size() < 34 || idx.compare(0, 9, std::string("MMIDIDX\0\0", 9)) != 0) return {};
  if (at<uint64_t>(idx, 9) != 1) return {};
  const uint8_t code = static_cast<uint8_t>(idx[17]);
  if (code != 8 && code != 4) return {};
  const Wide item = code == 8 ? 2 : 4;
  const uint64_t n = at<uint64_t>(idx, 18);
  const uint64_t d = at<uint64_t>(idx, 26);
  if (static_cast<Wide>(idx.size()) != 34 + 12 * static_cast<Wide>(n) + 8 * static_cast<Wide>(d))
    return {};
  if (d == 0) return {};
  std::vector<std::vector<int32_t>> sequences;
  Wide end = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const int32_t length = at<int32_t>(idx, 34 + 4 * i);
    const int64_t pointer = at<int64_t>(idx, 34 + 4 * n + 8 * i);
    if (length < 0 || pointer < end || pointer % item != 0) return {};
    const Wide next = pointer + length * item;
    if (next > static_cast<Wide>(bin.size())) return {};
    std::vector<int32_t> ids;
    for (int32_t k = 0; k < length; ++k) {
      ids.push_back(code == 8 ? at<uint16_t>(bin, pointer + 2 * k)
                              : at<int32_t>(bin, pointer + 4 * k));
    }
    sequences.push_back(std::move(ids));
    end = next;
  }
  if (end != static_cast<Wide>(bin.size())) return {};
  int64_t previous = 0;
  for (uint64_t k = 0; k < d; ++k) {
    const int64_t index = at<int64_t>(idx, 34 + 12 * n + 8 * k);
    if ((k == 0 && index != 0) || index < previous || index > static_cast<int64_t>(n)) return {};
    previous = index;
  }
  if (previous != static_cast<int64_t>(n)) return {};
  return sequences;
}

class CorruptDataset : public testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = data::Gpt2Tokenizer::load(gpt2_vocab(), gpt2_merges());
    ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
    prefix_ = dir_.file("data");
    auto writer = data::IndexedDatasetWriter::create(prefix_, data::TokenDType::kU16);
    ASSERT_TRUE(writer.is_ok()) << writer.status().to_string();
    // Five real documents, cut to 40..200 bytes so that the index holds varied lengths.
    const std::string text = corpus_lines("code", 5);
    for (size_t line = 0, pos = 0; line < 5; ++line) {
      const size_t end = text.find('\n', pos);
      const std::string doc = text.substr(pos, std::min<size_t>(end - pos, 40 + 40 * line));
      ASSERT_TRUE(writer->add_document(tokenizer->encode(doc)).is_ok());
      pos = end + 1;
    }
    ASSERT_TRUE(writer->finish().is_ok());
    idx_ = read_text(data::idx_path(prefix_));
    bin_ = read_text(data::bin_path(prefix_));
    sum_ = read_text(data::sum_path(prefix_));
    on_disk_idx_ = idx_;
    on_disk_bin_ = bin_;
    ASSERT_FALSE(sum_.empty()) << "the writer wrote no P.sum";
    original_ = read_dataset(prefix_);
    ASSERT_EQ(reference_read(idx_, bin_), original_);  // the twin agrees on the intact pair
  }

  // The structural tests run on the pair alone, as Megatron's tools leave it: with P.sum every
  // changed byte is refused by its checksum before the MMIDIDX rules are looked at.
  void remove_sum() { ASSERT_TRUE(std::filesystem::remove(data::sum_path(prefix_))); }

  // Writes the files that differ from the written pair (P.sum stays as written), opens the
  // dataset; true when DataLoss names `file` with the chunk of a CRC32C mismatch or the size.
  bool refused_by_sum(const std::string& idx, const std::string& bin, const std::string& file) {
    if (idx != on_disk_idx_) write_text(data::idx_path(prefix_), on_disk_idx_ = idx);
    if (bin != on_disk_bin_) write_text(data::bin_path(prefix_), on_disk_bin_ = bin);
    auto dataset = data::IndexedDataset::open(prefix_);
    if (dataset.is_ok()) {
      ADD_FAILURE() << "a changed " << file << " was accepted despite P.sum";
      return false;
    }
    EXPECT_EQ(dataset.status().code(), core::StatusCode::kDataLoss);
    const std::string& message = dataset.status().message();
    const bool named = message.find(file + ": bytes [") != std::string::npos ||
                       message.find(file + ": size: expected") != std::string::npos;
    EXPECT_TRUE(named) << message;
    EXPECT_NE(message.find("data.sum to accept"), std::string::npos) << message;
    return named;
  }

  // Writes the pair, opens it, and checks open() against the reference. Returns true when refused.
  bool check_pair(const std::string& idx, const std::string& bin) {
    write_text(data::idx_path(prefix_), idx);
    write_text(data::bin_path(prefix_), bin);
    auto expected = reference_read(idx, bin);
    auto dataset = data::IndexedDataset::open(prefix_);
    if (!expected) {
      EXPECT_FALSE(dataset.is_ok()) << "a corrupt pair was accepted";
      if (!dataset.is_ok()) {
        EXPECT_EQ(dataset.status().code(), core::StatusCode::kDataLoss);
        const std::string& message = dataset.status().message();
        EXPECT_TRUE(message.find("data.idx") != std::string::npos ||
                    message.find("data.bin") != std::string::npos)
            << "the error does not name the file: " << message;
      }
      return true;
    }
    EXPECT_TRUE(dataset.is_ok()) << dataset.status().to_string();
    if (dataset.is_ok()) {
      std::vector<std::vector<int32_t>> sequences;
      for (uint64_t s = 0; s < dataset->num_sequences(); ++s) {
        sequences.push_back(dataset->tokens(s));
      }
      EXPECT_TRUE(sequences == *expected) << "open() and the reference read different tokens";
    }
    return false;
  }

  ScratchDir dir_;
  std::string prefix_;
  std::string idx_;
  std::string bin_;
  std::string sum_;
  std::string on_disk_idx_;  // what refused_by_sum() last wrote
  std::string on_disk_bin_;
  std::vector<std::vector<int32_t>> original_;
};

TEST_F(CorruptDataset, EveryIndexBitFlipIsRefusedOrFormatValid) {
  remove_sum();
  const size_t header_and_arrays = 34 + 12 * original_.size();  // up to the document indices
  int flips = 0;
  int refused = 0;
  int refused_before_document_indices = 0;
  for (size_t byte = 0; byte < idx_.size(); ++byte) {
    for (int mask : {1, 2, 4, 8, 16, 32, 64, 128, 255}) {
      SCOPED_TRACE(testing::Message() << "byte " << byte << " xor " << mask);
      std::string idx = idx_;
      idx[byte] = static_cast<char>(idx[byte] ^ mask);
      const bool was_refused = check_pair(idx, bin_);
      ++flips;
      refused += was_refused;
      if (byte < header_and_arrays) refused_before_document_indices += was_refused;
    }
  }
  EXPECT_EQ(flips, 9 * static_cast<int>(idx_.size()));
  // The header (magic, version, dtype, counts) admits no flip at all.
  RecordProperty("idx_flips", flips);
  RecordProperty("idx_flips_refused", refused);
  RecordProperty("idx_flips_refused_before_document_indices", refused_before_document_indices);
  EXPECT_GT(refused, flips / 2);
}

TEST_F(CorruptDataset, EveryHeaderByteIsChecked) {
  remove_sum();
  for (size_t byte = 0; byte < 34; ++byte) {
    if (byte == 17) continue;  // dtype: 8 -> 4 is valid by the rules only with matching sizes
    std::string idx = idx_;
    idx[byte] = static_cast<char>(idx[byte] ^ 1);
    write_text(data::idx_path(prefix_), idx);
    auto dataset = data::IndexedDataset::open(prefix_);
    ASSERT_FALSE(dataset.is_ok()) << "byte " << byte;
    const std::string& message = dataset.status().message();
    const char* field = byte < 9 ? "magic" : byte < 17 ? "version" : "file size";
    EXPECT_NE(message.find(field), std::string::npos) << "byte " << byte << ": " << message;
    EXPECT_NE(message.find("data.idx"), std::string::npos) << message;
  }
}

TEST_F(CorruptDataset, TruncatedOrExtendedBinIsRefusedAndNamed) {
  remove_sum();
  for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, bin_.size() / 2, bin_.size()}) {
    SCOPED_TRACE(testing::Message() << "cut " << cut);
    EXPECT_TRUE(check_pair(idx_, bin_.substr(0, bin_.size() - cut)));
    write_text(data::bin_path(prefix_), bin_.substr(0, bin_.size() - cut));
    auto dataset = data::IndexedDataset::open(prefix_);
    ASSERT_FALSE(dataset.is_ok());
    EXPECT_NE(dataset.status().message().find("data.bin"), std::string::npos);
    EXPECT_NE(dataset.status().message().find("truncated"), std::string::npos)
        << dataset.status().message();
  }
  for (const std::string& tail : {std::string("x"), std::string("xy")}) {
    EXPECT_TRUE(check_pair(idx_, bin_ + tail));
  }
  // A missing P.bin is named too.
  std::filesystem::remove(data::bin_path(prefix_));
  write_text(data::idx_path(prefix_), idx_);
  auto dataset = data::IndexedDataset::open(prefix_);
  ASSERT_FALSE(dataset.is_ok());
  EXPECT_NE(dataset.status().message().find("data.bin"), std::string::npos);
}

// With P.sum a flipped token byte is refused (naming P.bin and its chunk). Without P.sum it is
// still a different valid dataset: MMIDIDX itself has no checksum (docs/reliability.md).
TEST_F(CorruptDataset, TokenByteFlipIsRefusedByTheSum) {
  std::string bin = bin_;
  bin[0] = static_cast<char>(bin[0] ^ 1);
  EXPECT_TRUE(refused_by_sum(idx_, bin, "data.bin"));
  remove_sum();
  EXPECT_FALSE(check_pair(idx_, bin));
  EXPECT_FALSE(read_dataset(prefix_) == original_);
}

// Every byte of P.bin and of P.idx, each changed in 3 ways (lowest bit, highest bit, inversion):
// all refused by P.sum, with DataLoss naming the file. (A CRC32C detects every error burst of
// up to 32 bits, so the other bit flips add run time, not coverage.)
TEST_F(CorruptDataset, EverySingleByteChangeIsRefusedWithSum) {
  int changes = 0;
  int refused = 0;
  for (const bool in_bin : {true, false}) {
    const std::string& original = in_bin ? bin_ : idx_;
    for (size_t byte = 0; byte < original.size(); ++byte) {
      for (int mask : {0x01, 0x80, 0xff}) {
        SCOPED_TRACE(testing::Message()
                     << (in_bin ? "P.bin" : "P.idx") << " byte " << byte << " xor " << mask);
        std::string changed = original;
        changed[byte] = static_cast<char>(changed[byte] ^ mask);
        ++changes;
        refused += in_bin ? refused_by_sum(idx_, changed, "data.bin")
                          : refused_by_sum(changed, bin_, "data.idx");
      }
    }
  }
  EXPECT_EQ(changes, 3 * static_cast<int>(bin_.size() + idx_.size()));
  EXPECT_EQ(refused, changes);
  RecordProperty("byte_changes_with_sum", changes);
  RecordProperty("bin_bytes", static_cast<int>(bin_.size()));
  RecordProperty("idx_bytes", static_cast<int>(idx_.size()));
}

TEST_F(CorruptDataset, TruncatedOrExtendedFilesAreRefusedWithSum) {
  for (size_t cut : {size_t{1}, size_t{2}, bin_.size() / 2, bin_.size()}) {
    SCOPED_TRACE(testing::Message() << "P.bin cut " << cut);
    EXPECT_TRUE(refused_by_sum(idx_, bin_.substr(0, bin_.size() - cut), "data.bin"));
  }
  EXPECT_TRUE(refused_by_sum(idx_, bin_ + "x", "data.bin"));
  EXPECT_TRUE(refused_by_sum(idx_, bin_ + "xy", "data.bin"));
  EXPECT_TRUE(refused_by_sum(idx_.substr(0, idx_.size() - 1), bin_, "data.idx"));
  EXPECT_TRUE(refused_by_sum(idx_.substr(0, idx_.size() - 8), bin_, "data.idx"));
  EXPECT_TRUE(refused_by_sum(idx_ + std::string(8, '\0'), bin_, "data.idx"));
  // Both restored: it opens again with the original tokens.
  write_text(data::idx_path(prefix_), on_disk_idx_ = idx_);
  write_text(data::bin_path(prefix_), on_disk_bin_ = bin_);
  EXPECT_TRUE(read_dataset(prefix_) == original_);
}

// `hydraulis data verify`: OK on the written dataset; the first bad chunk and a non-zero exit
// on a flipped token byte; a non-zero exit naming P.sum when there is none.
TEST_F(CorruptDataset, VerifyCommandReportsOkOrTheFirstBadChunk) {
  auto verify = [&](const char* log) {
    Child run = spawn({hydraulis_binary(), "data", "verify", "--data", prefix_}, dir_.file(log));
    const int status = wait_child(run);
    return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_text(run.log_path)};
  };
  auto [ok_code, ok_log] = verify("ok.log");
  EXPECT_EQ(ok_code, 0) << ok_log;
  EXPECT_EQ(ok_log.rfind("OK " + prefix_, 0), 0u) << ok_log;
  std::string bin = bin_;
  bin[bin.size() - 1] = static_cast<char>(bin[bin.size() - 1] ^ 0x40);
  write_text(data::bin_path(prefix_), bin);
  auto [bad_code, bad_log] = verify("bad.log");
  EXPECT_NE(bad_code, 0) << bad_log;
  EXPECT_NE(bad_log.find(fmt::format("data.bin: bytes [0, {}) (chunk 0)", bin_.size())),
            std::string::npos)
      << bad_log;
  write_text(data::bin_path(prefix_), bin_);
  remove_sum();
  auto [missing_code, missing_log] = verify("missing.log");
  EXPECT_NE(missing_code, 0) << missing_log;
  EXPECT_NE(missing_log.find("data.sum: no such file"), std::string::npos) << missing_log;
}

}  // namespace
}  // namespace hydraulis::reliability
