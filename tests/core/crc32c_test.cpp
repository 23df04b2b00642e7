// CRC32C against the check value of the CRC catalogue and the RFC 3720 (iSCSI) B.4 vectors, the
// hardware path against the software path on every length and alignment up to 64 bytes, and
// chaining (a CRC continued over a second buffer equals the CRC of both).
#include "core/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace hydraulis::core {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c_software("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[size_t(i)] = static_cast<unsigned char>(i);
    down[size_t(i)] = static_cast<unsigned char>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c_software(down.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32c, HardwareEqualsSoftwareAndChains) {
  std::vector<unsigned char> bytes(200);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 37 + 11);
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t n = 0; n <= 64; ++n) {
      EXPECT_EQ(crc32c(bytes.data() + offset, n), crc32c_software(bytes.data() + offset, n))
          << offset << " " << n;
    }
  }
  for (size_t split = 0; split <= bytes.size(); split += 13) {
    const uint32_t first = crc32c(bytes.data(), split);
    EXPECT_EQ(crc32c(bytes.data() + split, bytes.size() - split, first),
              crc32c(bytes.data(), bytes.size()));
    EXPECT_EQ(crc32c_software(bytes.data() + split, bytes.size() - split, first),
              crc32c(bytes.data(), bytes.size()));
  }
}

}  // namespace
}  // namespace hydraulis::core
