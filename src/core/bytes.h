// Little-endian byte fields of the binary formats (MMIDIDX, P.sum): host-order integers appended
// to a byte string or read from any (possibly unaligned) address, and a hex dump for errors.
// The formats are little-endian; the files that use these assert the host is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace hydraulis::core {

template <typename T>
void append_pod(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
T load_pod(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));  // fields need not be aligned (.idx arrays start at 34)
  return value;
}

// "48 59 44 44": the first n bytes, space-separated.
inline std::string hex_bytes(const uint8_t* data, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{}{:02x}", i ? " " : "", data[i]);
  return out;
}

}  // namespace hydraulis::core
