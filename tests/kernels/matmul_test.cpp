// matmul_fwd against a triple loop; matmul_bwd against fp64 finite differences, including the
// accumulate-into-dw / overwrite-dx convention.
#include "kernels/cpu/matmul.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

TEST(Matmul, ForwardMatchesTripleLoop) {
  std::mt19937_64 rng(11);
  for (DType dtype : {DType::kF32, DType::kF64}) {
    Tensor x = random_tensor({7, 12}, dtype, rng);  // (N, K)
    Tensor w = random_tensor({5, 12}, dtype, rng);  // (M, K)
    Tensor y = testing::nan_tensor({7, 5}, dtype);  // (N, M)
    matmul_fwd(x, w, y);
    Tensor expected = Tensor::empty({7, 5}, DType::kF64);
    for (int64_t n = 0; n < 7; ++n) {
      for (int64_t m = 0; m < 5; ++m) {
        double sum = 0;
        for (int64_t k = 0; k < 12; ++k) {
          sum += testing::value_at(x, n * 12 + k) * testing::value_at(w, m * 12 + k);
        }
        expected.data<double>()[n * 5 + m] = sum;
      }
    }
    testing::expect_near_all(y, expected, dtype == DType::kF32 ? 1e-5 : 1e-12, "y");
  }
}

TEST(Matmul, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(12);
  Tensor x = random_tensor({7, 12}, DType::kF64, rng);
  Tensor w = random_tensor({5, 12}, DType::kF64, rng);
  Tensor r = random_tensor({7, 5}, DType::kF64, rng);  // dL/dy
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 5}, DType::kF64);
    matmul_fwd(x, w, y);
    return testing::weighted_sum(y, r);
  };
  Tensor dx = testing::nan_tensor({7, 12}, DType::kF64);  // overwritten
  Tensor dw0 = random_tensor({5, 12}, DType::kF64, rng);
  Tensor dw = dw0.clone();  // accumulated
  matmul_bwd(r, x, w, dx, dw);
  for (int64_t i = 0; i < dw.numel(); ++i) dw.data<double>()[i] -= dw0.data<double>()[i];
  testing::expect_grad_matches_fd(loss, x, dx, "dx");
  testing::expect_grad_matches_fd(loss, w, dw, "dw");
}

TEST(Matmul, UndefinedDxSkipsInputGradAndEmptyBatchIsANoOp) {
  std::mt19937_64 rng(13);
  Tensor x = random_tensor({0, 4}, DType::kF32, rng);
  Tensor w = random_tensor({3, 4}, DType::kF32, rng);
  Tensor y = Tensor::empty({0, 3}, DType::kF32);
  matmul_fwd(x, w, y);
  Tensor dx;
  Tensor dw = Tensor::zeros({3, 4}, DType::kF32);
  matmul_bwd(y, x, w, dx, dw);
  for (int64_t i = 0; i < dw.numel(); ++i) EXPECT_EQ(dw.data<float>()[i], 0.0f);
}

using MatmulDeathTest = testing::ThreadsafeDeathTest;

TEST_F(MatmulDeathTest, RejectsMismatchedShapes) {
  Tensor x = Tensor::zeros({2, 3}, DType::kF32);
  Tensor w = Tensor::zeros({4, 5}, DType::kF32);
  Tensor y = Tensor::zeros({2, 4}, DType::kF32);
  EXPECT_DEATH(matmul_fwd(x, w, y), "matmul_fwd w must have shape \\[4, 3\\]");
}

}  // namespace
}  // namespace hydraulis::cpu
