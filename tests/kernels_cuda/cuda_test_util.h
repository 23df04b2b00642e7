// Helpers of the CUDA kernel tests: a fixture that skips without a device and owns a stream,
// seeded inputs rounded to bf16 (so the CPU twin sees exactly the device's inputs), and
// norm-wise / element-wise comparisons with dtype-scaled tolerances.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string_view>

#include "core/tensor.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace hydraulis::cuda::testing {

// bf16 has 8 significant bits: one rounding is at most 2^-9 relative. Results that went through
// a bf16 store (and bf16 operands of fp32-accumulated sums) are compared at these scales.
inline constexpr double kBf16Eps = 1.0 / 256;

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!device_available()) GTEST_SKIP() << "no CUDA device";
    install_allocator();
    HYD_CUDA_CHECK(cudaStreamCreate(&stream_));
  }
  void TearDown() override {
    if (stream_ != nullptr) HYD_CUDA_CHECK(cudaStreamDestroy(stream_));
  }
  cudaStream_t stream_ = nullptr;
  std::mt19937_64 rng_{20240611};
};

// Host f32 tensor of uniform values in [lo, hi), each rounded to the nearest bf16.
inline core::Tensor random_bf16_values(const core::Shape& shape, std::mt19937_64& rng,
                                       double lo = -1.0, double hi = 1.0) {
  core::Tensor t = core::Tensor::empty(shape, core::DType::kF32);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<float>()[i] = float(core::BFloat16(float(dist(rng))));
  }
  return t;
}

inline core::Tensor round_to_bf16(const core::Tensor& host_f32) {
  core::Tensor t = host_f32.clone();
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(core::BFloat16(t.data<float>()[i]));
  return t;
}

// ‖got − want‖₂ / max(‖want‖₂, tiny) <= rel_tol, and no NaN/Inf in got.
inline void expect_close(const core::Tensor& got, const core::Tensor& want, double rel_tol,
                         std::string_view what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  double diff = 0, norm = 0, max_abs = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double a = got.data<float>()[i], b = want.data<float>()[i];
    ASSERT_TRUE(std::isfinite(a)) << what << ": element " << i << " is " << a;
    diff += (a - b) * (a - b);
    norm += b * b;
    if (std::abs(a - b) > max_abs) { max_abs = std::abs(a - b); worst = i; }
  }
  double rel = std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
  EXPECT_LE(rel, rel_tol) << what << ": relative error " << rel << ", worst element " << worst
                          << " got " << got.data<float>()[worst] << " want "
                          << want.data<float>()[worst];
}

// |got − want| <= abs_tol + rel_tol·|want| for every element.
inline void expect_near_each(const core::Tensor& got, const core::Tensor& want, double abs_tol,
                             double rel_tol, std::string_view what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    double a = got.data<float>()[i], b = want.data<float>()[i];
    ASSERT_LE(std::abs(a - b), abs_tol + rel_tol * std::abs(b))
        << what << ": element " << i << " got " << a << " want " << b;
  }
}

}  // namespace hydraulis::cuda::testing
