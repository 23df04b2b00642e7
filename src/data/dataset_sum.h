// P.sum, the checksum sidecar of an MMIDIDX pair: the sizes of P.bin and P.idx and a CRC32C per
// 1 MiB chunk of each, closed by a CRC32C of the sum file itself (byte table: docs/formats.md,
// "P.sum"). P.bin and P.idx stay byte-identical to Megatron-LM's; tools that do not know P.sum
// ignore it. Written by IndexedDatasetWriter::finish(), checked by IndexedDataset::open and
// `hydraulis data verify`. Tests: tests/data/dataset_sum_test.cpp,
// tests/reliability/corruption_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace hydraulis::data {

inline constexpr char kSumMagic[8] = {'H', 'Y', 'D', 'D', 'S', 'U', 'M', '\0'};
inline constexpr uint32_t kSumVersion = 1;
inline constexpr uint32_t kSumChunkBytes = 1u << 20;  // what the writer uses
inline constexpr uint64_t kSumHeaderBytes = 32;       // magic, version, chunk, two sizes

// prefix + ".sum".
std::string sum_path(const std::string& prefix);

// CRC32C per chunk of a byte stream fed in pieces of any size (the writer feeds P.bin one
// document at a time): chunk k covers bytes [k·chunk, min((k+1)·chunk, total)).
class ChunkCrcs {
 public:
  explicit ChunkCrcs(uint32_t chunk_bytes = kSumChunkBytes) : chunk_bytes_(chunk_bytes) {}
  void update(const void* data, size_t bytes);
  // The CRCs of every chunk, the last (partial) one included.
  std::vector<uint32_t> crcs() const;
  uint64_t total_bytes() const { return total_; }
  uint32_t chunk_bytes() const { return chunk_bytes_; }

 private:
  uint32_t chunk_bytes_;
  uint64_t total_ = 0;
  uint32_t open_crc_ = 0;    // of the bytes of the chunk being filled
  uint64_t open_bytes_ = 0;  // bytes in it
  std::vector<uint32_t> done_;
};

// The bytes of a P.sum for P.bin and P.idx (both fed with the same chunk size).
std::string make_dataset_sum(const ChunkCrcs& bin, const ChunkCrcs& idx);

// What a successful check covered.
struct SumCheck {
  uint32_t chunk_bytes = 0;
  uint64_t bin_bytes = 0;
  uint64_t idx_bytes = 0;
  uint64_t bin_chunks = 0;
  uint64_t idx_chunks = 0;
};

// Checks `sum` (the bytes read from `sum_file`) against the contents of P.bin and P.idx: the sum
// file's own CRC, magic, version and sizes, then both file sizes, then every chunk. A mismatch is
// DataLoss naming the file, the chunk's byte range and the fix.
core::StatusOr<SumCheck> check_dataset_sum(const std::string& prefix, std::span<const uint8_t> sum,
                                           std::span<const uint8_t> bin,
                                           std::span<const uint8_t> idx);

}  // namespace hydraulis::data
