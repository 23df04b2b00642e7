// Shared helpers of the comm tests (threads, MPI, NCCL): tensors filled with exactly
// representable per-rank values, element reads as double, and a first-mismatch comparison.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>

#include "core/tensor.h"

namespace hydraulis::comm::testing {

// Value of element i on rank r, exact in `dtype` and with exact sums over up to 8 ranks in rank
// order: r·1000 + i for f32/f64/i32/i64; for bf16 (8 significant bits) (r+1)·2^(i mod 7), negated
// for odd i, so partial sums 1, 3, 6, 10, ... times a power of two stay exact.
inline double rank_value(core::DType dtype, int r, int64_t i) {
  if (dtype == core::DType::kBF16) {
    double v = (r + 1) * std::ldexp(1.0, static_cast<int>(i % 7));
    return i % 2 ? -v : v;
  }
  return r * 1000.0 + static_cast<double>(i);
}

inline void set_value(core::Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case core::DType::kF32: t.data<float>()[i] = static_cast<float>(v); break;
    case core::DType::kF64: t.data<double>()[i] = v; break;
    case core::DType::kBF16: t.data<core::BFloat16>()[i] = core::BFloat16(static_cast<float>(v)); break;
    case core::DType::kI32: t.data<int32_t>()[i] = static_cast<int32_t>(v); break;
    case core::DType::kI64: t.data<int64_t>()[i] = static_cast<int64_t>(v); break;
    case core::DType::kU8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
    default: FAIL() << "unsupported dtype in test";
  }
}

inline double get_value(const core::Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case core::DType::kF32: return t.data<float>()[i];
    case core::DType::kF64: return t.data<double>()[i];
    case core::DType::kBF16: return static_cast<float>(t.data<core::BFloat16>()[i]);
    case core::DType::kI32: return t.data<int32_t>()[i];
    case core::DType::kI64: return static_cast<double>(t.data<int64_t>()[i]);
    case core::DType::kU8: return t.data<uint8_t>()[i];
    default: return NAN;
  }
}

inline core::Tensor filled(core::DType dtype, int64_t n, const std::function<double(int64_t)>& f) {
  core::Tensor t = core::Tensor::empty({n}, dtype);
  for (int64_t i = 0; i < n; ++i) set_value(t, i, f(i));
  return t;
}

// Expects t[i] == expected(i) exactly for every i; reports only the first mismatch.
inline void expect_values(const core::Tensor& t, const std::function<double(int64_t)>& expected,
                          const std::string& context) {
  for (int64_t i = 0; i < t.numel(); ++i) {
    double want = expected(i);
    double got = get_value(t, i);
    if (got != want) {
      ADD_FAILURE() << context << ": element " << i << " of " << t.describe() << " is " << got
                    << ", expected " << want;
      return;
    }
  }
}

inline const char* dtype_label(core::DType dtype) {
  switch (dtype) {
    case core::DType::kF32: return "f32";
    case core::DType::kF64: return "f64";
    case core::DType::kBF16: return "bf16";
    case core::DType::kI32: return "i32";
    case core::DType::kI64: return "i64";
    default: return "other";
  }
}

}  // namespace hydraulis::comm::testing
