// Helpers for the kernel tests: seeded random tensors, int32 tensors, and the fp64 central
// finite-difference gradient check used for every op's backward.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace hydraulis::cpu::testing {

// Fixture of the death tests: OpenBLAS and parallel_for start threads, so the child re-executes
// the binary instead of forking a threaded process.
class ThreadsafeDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

inline core::Tensor random_tensor(const core::Shape& shape, core::DType dtype, std::mt19937_64& rng,
                                  double lo = -1.0, double hi = 1.0) {
  core::Tensor t = core::Tensor::empty(shape, dtype);
  std::uniform_real_distribution<double> dist(lo, hi);
  if (dtype == core::DType::kF64) {
    for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = dist(rng);
  } else {
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(dist(rng));
  }
  return t;
}

inline core::Tensor int32_tensor(const std::vector<int32_t>& values) {
  core::Tensor t = core::Tensor::empty({int64_t(values.size())}, core::DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

inline core::Tensor f64_tensor(const core::Shape& shape, const std::vector<double>& values) {
  core::Tensor t = core::Tensor::empty(shape, core::DType::kF64);
  EXPECT_EQ(t.numel(), int64_t(values.size()));
  for (size_t i = 0; i < values.size(); ++i) t.data<double>()[i] = values[i];
  return t;
}

inline core::Tensor nan_tensor(const core::Shape& shape, core::DType dtype) {
  core::Tensor t = core::Tensor::empty(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (dtype == core::DType::kF64) {
      t.data<double>()[i] = std::nan("");
    } else {
      t.data<float>()[i] = std::nanf("");
    }
  }
  return t;
}

inline double value_at(const core::Tensor& t, int64_t i) {
  return t.dtype() == core::DType::kF64 ? t.data<double>()[i] : double(t.data<float>()[i]);
}

// Σ_i a_i · b_i: the scalar "loss" whose gradient w.r.t. an op's output is b.
inline double weighted_sum(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.numel(), b.numel());
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += value_at(a, i) * value_at(b, i);
  return sum;
}

// |a − b| <= tol · max(1, |b|) elementwise.
inline void expect_near_all(const core::Tensor& a, const core::Tensor& b, double tol,
                            std::string_view what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = value_at(a, i), y = value_at(b, i);
    ASSERT_LE(std::abs(x - y), tol * std::max(1.0, std::abs(y)))
        << what << " element " << i << ": " << x << " vs " << y;
  }
}

// Checks `analytic` (f64, shape of `input`) against central differences of loss() w.r.t. every
// element of `input` (f64, perturbed in place and restored).
inline void expect_grad_matches_fd(const std::function<double()>& loss, core::Tensor& input,
                                   const core::Tensor& analytic, std::string_view what,
                                   double tol = 1e-6, double step = 1e-5) {
  ASSERT_EQ(input.dtype(), core::DType::kF64);
  ASSERT_EQ(input.shape(), analytic.shape()) << what;
  double* x = input.data<double>();
  for (int64_t i = 0; i < input.numel(); ++i) {
    double saved = x[i];
    x[i] = saved + step;
    double plus = loss();
    x[i] = saved - step;
    double minus = loss();
    x[i] = saved;
    double numeric = (plus - minus) / (2 * step);
    double exact = analytic.data<double>()[i];
    ASSERT_LE(std::abs(numeric - exact), tol * std::max(1.0, std::abs(numeric)))
        << what << " element " << i << ": finite difference " << numeric << ", backward " << exact;
  }
}

}  // namespace hydraulis::cpu::testing
