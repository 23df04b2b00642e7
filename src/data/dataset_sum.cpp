// P.sum writer and checker (layout: docs/formats.md, "P.sum"). The sum file is checked against
// its own trailing CRC32C before any field in it is trusted; then the recorded sizes, then each
// chunk of P.bin and P.idx in file order, so the first bad chunk is the one named.
// Tests: tests/data/dataset_sum_test.cpp.
#include "data/dataset_sum.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "core/bytes.h"
#include "core/check.h"
#include "core/crc32c.h"

namespace hydraulis::data {

namespace {

using core::Status;
using core::StatusOr;

constexpr uint64_t kSumTrailerBytes = 4;  // the CRC32C of everything before it
constexpr uint32_t kMinChunkBytes = 1u << 10;
constexpr uint32_t kMaxChunkBytes = 1u << 30;

using core::append_pod;
using core::load_pod;

uint64_t chunk_count(uint64_t bytes, uint64_t chunk) {
  return bytes / chunk + (bytes % chunk != 0);  // no overflow near 2^64
}

std::string fix_text(const std::string& prefix) {
  return fmt::format(
      "re-run `hydraulis data prepare` for {} to rebuild the dataset, or delete {} to accept "
      "{} and {} as they are",
      prefix, sum_path(prefix), prefix + ".bin", prefix + ".idx");
}

// Compares the recorded size and chunk CRCs (at `crcs`) of one file with its contents.
Status check_file(const std::string& prefix, const std::string& path, uint64_t recorded_bytes,
                  const uint8_t* crcs, uint32_t chunk, std::span<const uint8_t> data) {
  if (data.size() != recorded_bytes) {
    return core::data_loss("{}: size: expected {} bytes (recorded in {}), found {} ({}); {}", path,
                           recorded_bytes, sum_path(prefix), data.size(),
                           data.size() < recorded_bytes ? "truncated" : "extended",
                           fix_text(prefix));
  }
  for (uint64_t k = 0, begin = 0; begin < data.size(); ++k, begin += chunk) {
    const uint64_t bytes = std::min<uint64_t>(chunk, data.size() - begin);
    const uint32_t expected = load_pod<uint32_t>(crcs + 4 * k);
    const uint32_t found = core::crc32c(data.data() + begin, bytes);
    if (found != expected) {
      return core::data_loss(
          "{}: bytes [{}, {}) (chunk {}): CRC32C expected {:#010x} (recorded in {}), found "
          "{:#010x}: the file changed after it was written; {}",
          path, begin, begin + bytes, k, expected, sum_path(prefix), found, fix_text(prefix));
    }
  }
  return Status::ok();
}

}  // namespace

std::string sum_path(const std::string& prefix) {
  return prefix + ".sum";
}

void ChunkCrcs::update(const void* data, size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  total_ += bytes;
  while (bytes > 0) {
    const size_t take = std::min<uint64_t>(bytes, chunk_bytes_ - open_bytes_);
    open_crc_ = core::crc32c(p, take, open_crc_);
    open_bytes_ += take;
    p += take;
    bytes -= take;
    if (open_bytes_ == chunk_bytes_) {
      done_.push_back(open_crc_);
      open_crc_ = 0;
      open_bytes_ = 0;
    }
  }
}

std::vector<uint32_t> ChunkCrcs::crcs() const {
  std::vector<uint32_t> out = done_;
  if (open_bytes_ > 0) out.push_back(open_crc_);
  return out;
}

std::string make_dataset_sum(const ChunkCrcs& bin, const ChunkCrcs& idx) {
  HYD_CHECK(bin.chunk_bytes() == idx.chunk_bytes(), "chunk sizes {} and {} differ",
            bin.chunk_bytes(), idx.chunk_bytes());
  const std::vector<uint32_t> bin_crcs = bin.crcs();
  const std::vector<uint32_t> idx_crcs = idx.crcs();
  std::string out;
  out.reserve(kSumHeaderBytes + 4 * (bin_crcs.size() + idx_crcs.size()) + kSumTrailerBytes);
  out.append(kSumMagic, sizeof(kSumMagic));
  append_pod<uint32_t>(out, kSumVersion);
  append_pod<uint32_t>(out, bin.chunk_bytes());
  append_pod<uint64_t>(out, bin.total_bytes());
  append_pod<uint64_t>(out, idx.total_bytes());
  for (uint32_t crc : bin_crcs) append_pod<uint32_t>(out, crc);
  for (uint32_t crc : idx_crcs) append_pod<uint32_t>(out, crc);
  append_pod<uint32_t>(out, core::crc32c(out.data(), out.size()));
  return out;
}

StatusOr<SumCheck> check_dataset_sum(const std::string& prefix, std::span<const uint8_t> sum,
                                     std::span<const uint8_t> bin, std::span<const uint8_t> idx) {
  const std::string path = sum_path(prefix);
  const std::string fix = fmt::format(
      "the checksum file itself is damaged; re-run `hydraulis data prepare` for {} to rebuild "
      "the dataset, or delete {} to open the pair without checksums",
      prefix, path);
  const uint8_t* p = sum.data();
  const std::string magic_hex = core::hex_bytes(p, std::min(sizeof(kSumMagic), sum.size()));
  if (sum.size() < kSumHeaderBytes + kSumTrailerBytes) {
    return core::data_loss("{}: size: expected at least {} bytes, found {} (truncated); {}", path,
                           kSumHeaderBytes + kSumTrailerBytes, sum.size(), fix);
  }
  if (std::memcmp(p, kSumMagic, sizeof(kSumMagic)) != 0) {
    return core::data_loss(
        "{}: magic: expected 48 59 44 44 53 55 4d 00 (\"HYDDSUM\\0\"), found {} (not a "
        "Hydraulis dataset checksum file); {}",
        path, magic_hex, fix);
  }
  const uint32_t version = load_pod<uint32_t>(p + 8);
  if (version != kSumVersion) {
    return core::data_loss("{}: version: expected {}, found {}{}; {}", path, kSumVersion, version,
                           version > kSumVersion ? " (written by a newer hydraulis)" : "", fix);
  }
  const uint64_t body = sum.size() - kSumTrailerBytes;
  const uint32_t stored = load_pod<uint32_t>(p + body);
  const uint32_t computed = core::crc32c(p, body);
  if (stored != computed) {
    return core::data_loss(
        "{}: checksum of bytes [0, {}): expected {:#010x} (stored at the end), found {:#010x}; {}",
        path, body, stored, computed, fix);
  }
  SumCheck check;
  check.chunk_bytes = load_pod<uint32_t>(p + 12);
  check.bin_bytes = load_pod<uint64_t>(p + 16);
  check.idx_bytes = load_pod<uint64_t>(p + 24);
  if (check.chunk_bytes < kMinChunkBytes || check.chunk_bytes > kMaxChunkBytes ||
      !std::has_single_bit(check.chunk_bytes)) {
    return core::data_loss("{}: chunk bytes: expected a power of two in [{}, {}], found {}; {}",
                           path, kMinChunkBytes, kMaxChunkBytes, check.chunk_bytes, fix);
  }
  check.bin_chunks = chunk_count(check.bin_bytes, check.chunk_bytes);
  check.idx_chunks = chunk_count(check.idx_bytes, check.chunk_bytes);
  // Each count is < 2^54 (size < 2^64, chunk >= 2^10): the sum below cannot overflow.
  const uint64_t expected =
      kSumHeaderBytes + 4 * (check.bin_chunks + check.idx_chunks) + kSumTrailerBytes;
  if (sum.size() != expected) {
    return core::data_loss("{}: size: expected {} bytes for {} + {} chunk checksums, found {}; {}",
                           path, expected, check.bin_chunks, check.idx_chunks, sum.size(), fix);
  }
  const uint8_t* bin_crcs = p + kSumHeaderBytes;
  const uint8_t* idx_crcs = bin_crcs + 4 * check.bin_chunks;
  // P.idx first: it is small, and a wrong index makes every P.bin chunk meaningless anyway.
  HYD_RETURN_IF_ERROR(
      check_file(prefix, prefix + ".idx", check.idx_bytes, idx_crcs, check.chunk_bytes, idx));
  HYD_RETURN_IF_ERROR(
      check_file(prefix, prefix + ".bin", check.bin_bytes, bin_crcs, check.chunk_bytes, bin));
  return check;
}

}  // namespace hydraulis::data
