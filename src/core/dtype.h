// Element types and the 16-bit float formats (bf16, fp16) with exact round-to-nearest-even
// conversion, usable from host code and (as plain structs) inside CUDA kernels' host wrappers.
// Tests: tests/core/dtype_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace hydraulis::core {

enum class DType : uint8_t { kF32, kF64, kBF16, kF16, kI32, kI64, kU8, kU16 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);

// Converts float to the upper 16 bits with round-to-nearest-even; NaN stays a (quiet) NaN.
inline uint16_t float_to_bf16_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign kept
  }
  uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

inline float bf16_bits_to_float(uint16_t bits16) {
  uint32_t bits = static_cast<uint32_t>(bits16) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

uint16_t float_to_f16_bits(float value);
float f16_bits_to_float(uint16_t bits);

// bfloat16: 1 sign, 8 exponent, 7 mantissa bits (the top half of an IEEE float).
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  explicit BFloat16(float value) : bits(float_to_bf16_bits(value)) {}
  explicit operator float() const { return bf16_bits_to_float(bits); }
  static BFloat16 from_bits(uint16_t b) {
    BFloat16 x;
    x.bits = b;
    return x;
  }
};

// IEEE binary16: 1 sign, 5 exponent, 10 mantissa bits.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  explicit Float16(float value) : bits(float_to_f16_bits(value)) {}
  explicit operator float() const { return f16_bits_to_float(bits); }
  static Float16 from_bits(uint16_t b) {
    Float16 x;
    x.bits = b;
    return x;
  }
};

static_assert(sizeof(BFloat16) == 2 && sizeof(Float16) == 2);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<double>() { return DType::kF64; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<Float16>() { return DType::kF16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kI64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::kU16; }

}  // namespace hydraulis::core
