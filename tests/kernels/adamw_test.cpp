// AdamW against hand-computed steps (PyTorch AdamW semantics), grad-norm over a list of tensors,
// and the clip factor.
#include "kernels/cpu/adamw.h"

#include <gtest/gtest.h>

#include <limits>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;

TEST(AdamW, FirstStepByHand) {
  // p = 1, g = 0.5, lr 0.1, wd 0.01, betas (0.9, 0.999), eps 1e-8, t = 1:
  // p ← 1·(1 − 0.001) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, sqrt(v̂) = 0.5;
  // p ← 0.999 − 0.1·0.5/(0.5 + 1e-8) = 0.899000002.
  for (DType dtype : {DType::kF32, DType::kF64}) {
    Tensor p = Tensor::empty({1}, dtype), g = Tensor::empty({1}, dtype);
    Tensor m = Tensor::zeros({1}, dtype), v = Tensor::zeros({1}, dtype);
    if (dtype == DType::kF64) {
      p.data<double>()[0] = 1.0;
      g.data<double>()[0] = 0.5;
    } else {
      p.data<float>()[0] = 1.0f;
      g.data<float>()[0] = 0.5f;
    }
    AdamWConfig config{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01};
    adamw_step(p, g, m, v, config, 1, 1.0);
    double tol = dtype == DType::kF64 ? 1e-15 : 1e-7;
    EXPECT_NEAR(testing::value_at(p, 0), 0.899000002, tol);
    EXPECT_NEAR(testing::value_at(m, 0), 0.05, tol);
    EXPECT_NEAR(testing::value_at(v, 0), 0.00025, tol);
  }
}

TEST(AdamW, LaterStepWithGradScaleByHand) {
  // t = 3, p = 2, m = 0.1, v = 0.01, raw grad −0.4 scaled by 0.5 → g = −0.2;
  // lr 0.01, wd 0.1, betas (0.8, 0.9), eps 1e-3:
  // p ← 2·(1 − 0.001) = 1.998; m = 0.08 − 0.04 = 0.04; v = 0.009 + 0.004 = 0.013;
  // 1 − 0.8³ = 0.488, 1 − 0.9³ = 0.271; denom = sqrt(0.013)/sqrt(0.271) + 1e-3 = 0.2200216421;
  // p ← 1.998 − (0.01/0.488)·0.04/denom = 1.9942745840665812.
  Tensor p = testing::f64_tensor({1}, {2.0}), g = testing::f64_tensor({1}, {-0.4});
  Tensor m = testing::f64_tensor({1}, {0.1}), v = testing::f64_tensor({1}, {0.01});
  AdamWConfig config{.lr = 0.01, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-3, .weight_decay = 0.1};
  adamw_step(p, g, m, v, config, 3, 0.5);
  EXPECT_NEAR(p.data<double>()[0], 1.9942745840665812, 1e-15);
  EXPECT_NEAR(m.data<double>()[0], 0.04, 1e-15);
  EXPECT_NEAR(v.data<double>()[0], 0.013, 1e-15);
  EXPECT_NEAR(g.data<double>()[0], -0.4, 0.0);  // the gradient is not modified
}

TEST(AdamW, ManyElementsMatchScalarSteps) {
  std::mt19937_64 rng(81);
  const int64_t n = 100003;  // several thread chunks, odd tail
  Tensor p = testing::random_tensor({n}, DType::kF64, rng);
  Tensor g = testing::random_tensor({n}, DType::kF64, rng);
  Tensor m = Tensor::zeros({n}, DType::kF64), v = Tensor::zeros({n}, DType::kF64);
  Tensor p0 = p.clone();
  AdamWConfig config{.lr = 0.1, .weight_decay = 0.0};
  adamw_step(p, g, m, v, config, 1, 1.0);
  // First step without decay: p − lr·sign(g)·|g|/(|g| + eps).
  for (int64_t i = 0; i < n; i += 997) {
    double gi = g.data<double>()[i];
    double expected = p0.data<double>()[i] - 0.1 * gi / (std::abs(gi) + 1e-8);
    ASSERT_NEAR(p.data<double>()[i], expected, 1e-12) << i;
  }
}

TEST(GradNorm, SumsSquaresOverAListOfTensors) {
  Tensor a = testing::f64_tensor({1}, {3.0});
  Tensor b = Tensor::empty({2}, DType::kF32);
  b.data<float>()[0] = 4.0f;
  b.data<float>()[1] = 0.0f;
  Tensor c = Tensor::empty({200001}, DType::kF32);  // 4 chunks of 64 Ki elements
  for (int64_t i = 0; i < c.numel(); ++i) c.data<float>()[i] = 0.5f;
  std::vector<Tensor> grads = {a, b, c};
  Tensor out = Tensor::empty({1}, DType::kF64);
  grad_norm_sq(grads, out);
  EXPECT_EQ(out.data<double>()[0], 25.0 + 200001 * 0.25);
  Tensor out32 = Tensor::empty({1}, DType::kF32);
  grad_norm_sq(std::vector<Tensor>{a, b}, out32);
  EXPECT_EQ(out32.data<float>()[0], 25.0f);
}

TEST(GradNorm, ClipFactor) {
  EXPECT_DOUBLE_EQ(grad_clip_factor(10.0, 1.0), 1.0 / (10.0 + 1e-6));
  EXPECT_EQ(grad_clip_factor(0.5, 1.0), 1.0);
  EXPECT_EQ(grad_clip_factor(1e9, 0.0), 1.0);  // clipping off
  EXPECT_EQ(grad_clip_factor(std::numeric_limits<double>::infinity(), 1.0), 0.0);
  EXPECT_TRUE(std::isnan(grad_clip_factor(std::nan(""), 1.0)));
}

}  // namespace
}  // namespace hydraulis::cpu
