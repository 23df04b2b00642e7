// CRC32C: software tables and the SSE4.2 instruction (see crc32c.h).
#include "core/crc32c.h"

#include <array>
#include <bit>
#include <cstring>

namespace hydraulis::core {

namespace {

static_assert(std::endian::native == std::endian::little, "CRC32C words are read little-endian");

constexpr uint32_t kPolynomial = 0x82F63B78u;  // 0x1EDC6F41 bit-reversed

// tables[0][b]: the CRC register after shifting byte b through 8 steps of the polynomial.
// tables[k][b]: the same byte followed by k zero bytes, so 8 bytes fold in one step, byte j of
// the word through tables[7 - j].
using Tables = std::array<std::array<uint32_t, 256>, 8>;

Tables make_tables() {
  Tables t{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b;
    for (int i = 0; i < 8; ++i) r = (r & 1u) ? (r >> 1) ^ kPolynomial : r >> 1;
    t[0][b] = r;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t b = 0; b < 256; ++b) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFFu];
  }
  return t;
}

const Tables& tables() {
  static const Tables t = make_tables();
  return t;
}

// `state` is the register (the inverted CRC).
uint32_t update_software(uint32_t state, const unsigned char* p, size_t n) {
  const Tables& t = tables();
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    const uint32_t low = uint32_t(word) ^ state;
    const uint32_t high = uint32_t(word >> 32);
    state = t[7][low & 0xFF] ^ t[6][(low >> 8) & 0xFF] ^ t[5][(low >> 16) & 0xFF] ^
            t[4][low >> 24] ^ t[3][high & 0xFF] ^ t[2][(high >> 8) & 0xFF] ^
            t[1][(high >> 16) & 0xFF] ^ t[0][high >> 24];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ t[0][(state ^ *p++) & 0xFF];
  return state;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HYD_CRC32C_HARDWARE 1
__attribute__((target("sse4.2"))) uint32_t update_hardware(uint32_t state, const unsigned char* p,
                                                           size_t n) {
  uint64_t s = state;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    s = __builtin_ia32_crc32di(s, word);
    p += 8;
    n -= 8;
  }
  uint32_t s32 = uint32_t(s);
  while (n-- > 0) s32 = __builtin_ia32_crc32qi(s32, *p++);
  return s32;
}
#endif

}  // namespace

bool crc32c_hardware_available() {
#ifdef HYD_CRC32C_HARDWARE
  static const bool available = __builtin_cpu_supports("sse4.2");
  return available;
#else
  return false;
#endif
}

uint32_t crc32c_software(const void* data, size_t bytes, uint32_t previous) {
  return ~update_software(~previous, static_cast<const unsigned char*>(data), bytes);
}

uint32_t crc32c(const void* data, size_t bytes, uint32_t previous) {
#ifdef HYD_CRC32C_HARDWARE
  if (crc32c_hardware_available()) {
    return ~update_hardware(~previous, static_cast<const unsigned char*>(data), bytes);
  }
#endif
  return crc32c_software(data, bytes, previous);
}

}  // namespace hydraulis::core
