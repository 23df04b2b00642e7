// cuBLASLt linear layer vs the CPU twin on bf16-rounded inputs: forward, dx, and dw accumulated
// into both f32 and bf16 buffers, the fused residual and accumulated-dx forms; aligned and odd
// shapes.
#include <gtest/gtest.h>

#include <cmath>

#include <tuple>

#include "cuda_test_util.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/matmul.h"

namespace hydraulis::cuda {
namespace {

using core::DType;
using core::Tensor;
using testing::CudaTest;
using testing::expect_close;
using testing::kBf16Eps;

class MatmulTest : public CudaTest,
                   public ::testing::WithParamInterface<std::tuple<int, int, int>> {};

TEST_P(MatmulTest, ForwardAndBackwardMatchCpu) {
  auto [N, K, M] = GetParam();
  Tensor x = testing::random_bf16_values({N, K}, rng_);
  Tensor w = testing::random_bf16_values({M, K}, rng_);
  Tensor dy = testing::random_bf16_values({N, M}, rng_);
  Tensor y_ref = Tensor::empty({N, M}, DType::kF32), dx_ref = Tensor::empty({N, K}, DType::kF32);
  Tensor dw_init = testing::random_bf16_values({M, K}, rng_);
  Tensor dw_ref = dw_init.clone();
  cpu::matmul_fwd(x, w, y_ref);
  cpu::matmul_bwd(dy, x, w, dx_ref, dw_ref);

  Tensor xd = to_device_as(x, DType::kBF16, stream_), wd = to_device_as(w, DType::kBF16, stream_);
  Tensor dyd = to_device_as(dy, DType::kBF16, stream_);
  Tensor yd = Tensor::empty({N, M}, DType::kBF16, core::Device::kCuda);
  matmul_fwd(xd, wd, yd, stream_);
  expect_close(to_host_f32(yd, stream_), y_ref, kBf16Eps, "y");
  for (DType dw_type : {DType::kF32, DType::kBF16}) {
    Tensor dxd = Tensor::empty({N, K}, DType::kBF16, core::Device::kCuda);
    Tensor dwd = to_device_as(dw_init, dw_type, stream_);
    matmul_bwd(dyd, xd, wd, dxd, dwd, stream_);
    expect_close(to_host_f32(dxd, stream_), dx_ref, kBf16Eps, "dx");
    expect_close(to_host_f32(dwd, stream_), dw_ref, dw_type == DType::kF32 ? 1e-5 : kBf16Eps, "dw");
  }
  // Fused forms: y = x·Wᵀ + residual (GEMM epilogue), dx += dy·W.
  Tensor residual = testing::random_bf16_values({N, M}, rng_);
  Tensor y_add_ref = y_ref.clone();
  for (int64_t i = 0; i < y_add_ref.numel(); ++i) {
    y_add_ref.data<float>()[i] += residual.data<float>()[i];
  }
  matmul_fwd_add(xd, wd, to_device_as(residual, DType::kBF16, stream_), yd, stream_);
  expect_close(to_host_f32(yd, stream_), y_add_ref, kBf16Eps, "x·Wᵀ + residual");
  Tensor dx_init = testing::random_bf16_values({N, K}, rng_);
  Tensor dx_acc_ref = dx_ref.clone();
  for (int64_t i = 0; i < dx_acc_ref.numel(); ++i) {
    dx_acc_ref.data<float>()[i] += dx_init.data<float>()[i];
  }
  Tensor dx_acc = to_device_as(dx_init, DType::kBF16, stream_);
  Tensor dw_acc = to_device_as(dw_init, DType::kF32, stream_);
  matmul_bwd(dyd, xd, wd, dx_acc, dw_acc, stream_, InputGrad::kAccumulate);
  expect_close(to_host_f32(dx_acc, stream_), dx_acc_ref, kBf16Eps, "dx accumulated");
  expect_close(to_host(dw_acc, stream_), dw_ref, 1e-5, "dw (dx accumulated)");

  Tensor no_dx;  // undefined: only the weight gradient
  Tensor dwd = to_device_as(dw_init, DType::kF32, stream_);
  matmul_bwd(dyd, xd, wd, no_dx, dwd, stream_);
  expect_close(to_host(dwd, stream_), dw_ref, 1e-5, "dw without dx");

  // WeightGrad::kWrite: dw = dyᵀ·x over NaN garbage (beta = 0 never reads it).
  Tensor dw_only = Tensor::zeros({M, K}, DType::kF32);
  cpu::matmul_bwd(dy, x, w, dx_ref, dw_only);
  Tensor garbage = Tensor::empty({M, K}, DType::kF32);
  for (int64_t i = 0; i < garbage.numel(); ++i) garbage.data<float>()[i] = std::nanf("");
  Tensor dw_write = to_device(garbage, stream_);
  Tensor dx_write = Tensor::empty({N, K}, DType::kBF16, core::Device::kCuda);
  matmul_bwd(dyd, xd, wd, dx_write, dw_write, stream_, InputGrad::kWrite, WeightGrad::kWrite);
  expect_close(to_host(dw_write, stream_), dw_only, 1e-5, "dw written");
  expect_close(to_host_f32(dx_write, stream_), dx_ref, kBf16Eps, "dx (dw written)");
}

// No positions (N = 0): a written weight gradient is all zeros, an accumulated one unchanged.
TEST_F(CudaTest, MatmulBackwardOverNoPositions) {
  const int K = 24, M = 40;
  Tensor w = to_device_as(testing::random_bf16_values({M, K}, rng_), DType::kBF16, stream_);
  Tensor x = Tensor::empty({0, K}, DType::kBF16, core::Device::kCuda);
  Tensor dy = Tensor::empty({0, M}, DType::kBF16, core::Device::kCuda);
  Tensor dx = Tensor::empty({0, K}, DType::kBF16, core::Device::kCuda);
  Tensor init = testing::random_bf16_values({M, K}, rng_);
  Tensor garbage = Tensor::empty({M, K}, DType::kF32);
  for (int64_t i = 0; i < garbage.numel(); ++i) garbage.data<float>()[i] = std::nanf("");
  Tensor dw = to_device(garbage, stream_);
  matmul_bwd(dy, x, w, dx, dw, stream_, InputGrad::kWrite, WeightGrad::kWrite);
  expect_close(to_host(dw, stream_), Tensor::zeros({M, K}, DType::kF32), 0.0, "dw written, N = 0");
  Tensor acc = to_device(init, stream_);
  matmul_bwd(dy, x, w, dx, acc, stream_);
  expect_close(to_host(acc, stream_), init, 0.0, "dw accumulated, N = 0");
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulTest,
                         ::testing::Values(std::make_tuple(37, 72, 40), std::make_tuple(256, 512, 384),
                                           std::make_tuple(7, 16, 24)));

}  // namespace
}  // namespace hydraulis::cuda
