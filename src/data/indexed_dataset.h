// Indexed dataset in Megatron-LM's MMIDIDX layout: P.bin holds the token ids of every sequence
// back to back; P.idx holds the magic "MMIDIDX\x00\x00", version 1, dtype code, sequence count,
// document count, then int32 lengths, int64 byte pointers and int64 document indices
// (byte table: docs/formats.md). Reader memory-maps both files and validates magic, version,
// dtype and every size before use. The writer also writes the checksum sidecar P.sum
// (data/dataset_sum.h), which the reader verifies when it exists.
// Tests: tests/data/indexed_dataset_test.cpp, tests/data/dataset_sum_test.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/file.h"
#include "core/status.h"
#include "data/dataset_sum.h"

namespace hydraulis::data {

// Megatron dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16.
enum class TokenDType : uint8_t { kU16 = 8, kI32 = 4 };

// Layout constants of the .idx header (docs/formats.md).
inline constexpr char kIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
inline constexpr uint64_t kIndexVersion = 1;
inline constexpr uint64_t kIndexHeaderBytes = 34;  // 9 magic + 8 version + 1 dtype + 8 + 8 counts

// kU16 when vocab_size < 65,536 (every id fits), else kI32.
TokenDType token_dtype_for_vocab(int64_t vocab_size);
// Bytes per token in P.bin: 2 for kU16, 4 for kI32; the name is "uint16" / "int32".
int token_dtype_bytes(TokenDType dtype);
const char* token_dtype_name(TokenDType dtype);
// prefix + ".bin" and prefix + ".idx".
std::string bin_path(const std::string& prefix);
std::string idx_path(const std::string& prefix);

// Writes P.bin, P.idx and P.sum atomically (all appear on finish(), none on failure or
// destruction). create() also removes P.{bin,idx,sum}.tmp.<pid> left by a killed writer that is
// gone.
class IndexedDatasetWriter {
 public:
  // kU16 when vocab_size < 65,536 (GPT-2), else kI32.
  static core::StatusOr<IndexedDatasetWriter> create(const std::string& prefix,
                                                     TokenDType dtype);
  IndexedDatasetWriter();
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(IndexedDatasetWriter&&) noexcept;
  IndexedDatasetWriter& operator=(IndexedDatasetWriter&&) noexcept;

  // One document = one sequence (Megatron's default); ids must fit the dtype.
  core::Status add_document(std::span<const int32_t> ids);
  // Writes P.idx and P.sum, flushes all three temp files, removes an older P.sum and P.idx, then
  // renames P.bin, P.idx and last P.sum into place. A crash in between leaves a P.bin without a
  // P.idx, or a pair without P.sum; never a mismatched pair, never a P.sum of other files
  // (docs/formats.md, "How the writer keeps the files consistent").
  core::Status finish();
  uint64_t num_sequences() const;
  uint64_t num_tokens() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// kIfPresent: verify P.sum when it exists, open a pair without one as Megatron's tools write it.
// kRequired: a missing P.sum is NotFound (`hydraulis data verify`).
enum class SumRequirement { kIfPresent, kRequired };

class IndexedDataset {
 public:
  // Verifies P.sum (every chunk of both files) before the structural checks of docs/formats.md.
  static core::StatusOr<IndexedDataset> open(const std::string& prefix,
                                             SumRequirement sum = SumRequirement::kIfPresent);
  IndexedDataset();
  ~IndexedDataset();
  IndexedDataset(IndexedDataset&&) noexcept;
  IndexedDataset& operator=(IndexedDataset&&) noexcept;

  uint64_t num_sequences() const;
  uint64_t num_documents() const;  // document count field − 1 (the indices start with 0)
  uint64_t num_tokens() const;
  TokenDType dtype() const;
  std::span<const int32_t> lengths() const;        // tokens per sequence
  int32_t length(uint64_t sequence) const;
  // Token ids of one sequence, widened to int32.
  std::vector<int32_t> tokens(uint64_t sequence) const;
  void tokens(uint64_t sequence, std::vector<int32_t>& out) const;
  const std::string& prefix() const;
  // Byte offset of a sequence in P.bin, and the first sequence of document `document`
  // (document_index(num_documents()) == num_sequences()).
  int64_t pointer(uint64_t sequence) const;
  int64_t document_index(uint64_t document) const;
  // What the P.sum check covered; nullopt when the dataset has no P.sum.
  const std::optional<SumCheck>& sum_check() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hydraulis::data
