// rms_norm_fwd on a hand example; rms_norm_bwd (dx, dweight) against fp64 finite differences.
#include "kernels/cpu/rms_norm.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

TEST(RmsNorm, ForwardHandExample) {
  // x = [3, 4]: mean(x²) = 12.5, rstd = 1/sqrt(12.5 + 0.5) = 1/sqrt(13).
  Tensor x = testing::f64_tensor({1, 2}, {3.0, 4.0});
  Tensor w = testing::f64_tensor({2}, {2.0, -1.0});
  Tensor y = Tensor::empty({1, 2}, DType::kF64);
  Tensor rstd = Tensor::empty({1}, DType::kF64);
  rms_norm_fwd(x, w, 0.5, y, rstd);
  EXPECT_NEAR(rstd.data<double>()[0], 1.0 / std::sqrt(13.0), 1e-15);
  EXPECT_NEAR(y.data<double>()[0], 6.0 / std::sqrt(13.0), 1e-15);
  EXPECT_NEAR(y.data<double>()[1], -4.0 / std::sqrt(13.0), 1e-15);
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(31);
  const int64_t tokens = 7, channels = 12;
  const double eps = 1e-5;
  Tensor x = random_tensor({tokens, channels}, DType::kF64, rng);
  Tensor w = random_tensor({channels}, DType::kF64, rng, 0.5, 1.5);
  Tensor r = random_tensor({tokens, channels}, DType::kF64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({tokens, channels}, DType::kF64);
    Tensor rstd = Tensor::empty({tokens}, DType::kF64);
    rms_norm_fwd(x, w, eps, y, rstd);
    return testing::weighted_sum(y, r);
  };
  Tensor y = Tensor::empty({tokens, channels}, DType::kF64);
  Tensor rstd = Tensor::empty({tokens}, DType::kF64);
  rms_norm_fwd(x, w, eps, y, rstd);
  Tensor dx = testing::nan_tensor({tokens, channels}, DType::kF64);
  Tensor dw = Tensor::zeros({channels}, DType::kF64);
  rms_norm_bwd(r, x, w, rstd, dx, dw);
  testing::expect_grad_matches_fd(loss, x, dx, "dx");
  testing::expect_grad_matches_fd(loss, w, dw, "dweight");
}

TEST(RmsNorm, Fp32MatchesFp64) {
  std::mt19937_64 rng(32);
  Tensor x = random_tensor({9, 40}, DType::kF64, rng, -3, 3);
  Tensor w = random_tensor({40}, DType::kF64, rng);
  Tensor x32 = Tensor::empty({9, 40}, DType::kF32), w32 = Tensor::empty({40}, DType::kF32);
  for (int64_t i = 0; i < x.numel(); ++i) x32.data<float>()[i] = float(x.data<double>()[i]);
  for (int64_t i = 0; i < w.numel(); ++i) w32.data<float>()[i] = float(w.data<double>()[i]);
  Tensor y = Tensor::empty({9, 40}, DType::kF64), rstd = Tensor::empty({9}, DType::kF64);
  Tensor y32 = Tensor::empty({9, 40}, DType::kF32), rstd32 = Tensor::empty({9}, DType::kF32);
  rms_norm_fwd(x, w, 1e-6, y, rstd);
  rms_norm_fwd(x32, w32, 1e-6, y32, rstd32);
  testing::expect_near_all(y32, y, 1e-6, "y");
  testing::expect_near_all(rstd32, rstd, 1e-6, "rstd");
}

}  // namespace
}  // namespace hydraulis::cpu
