// swiglu_fwd by hand on the fused [gate | up] layout; swiglu_bwd against fp64 finite differences.
#include "kernels/cpu/swiglu.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

TEST(Swiglu, ForwardHandValues) {
  // gate = [0, 1, −2], up = [5, 2, 3]: out = g·σ(g)·u.
  Tensor gate_up = testing::f64_tensor({1, 6}, {0, 1, -2, 5, 2, 3});
  Tensor out = Tensor::empty({1, 3}, DType::kF64);
  swiglu_fwd(gate_up, out);
  EXPECT_EQ(out.data<double>()[0], 0.0);
  EXPECT_NEAR(out.data<double>()[1], 2.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(out.data<double>()[2], -6.0 / (1.0 + std::exp(2.0)), 1e-15);
}

TEST(Swiglu, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(51);
  Tensor gate_up = random_tensor({7, 2 * 11}, DType::kF64, rng, -4, 4);
  Tensor r = random_tensor({7, 11}, DType::kF64, rng);
  auto loss = [&] {
    Tensor out = Tensor::empty({7, 11}, DType::kF64);
    swiglu_fwd(gate_up, out);
    return testing::weighted_sum(out, r);
  };
  Tensor dgate_up = testing::nan_tensor({7, 22}, DType::kF64);
  swiglu_bwd(r, gate_up, dgate_up);
  testing::expect_grad_matches_fd(loss, gate_up, dgate_up, "dgate_up");
}

TEST(Swiglu, LargeGatesStayFinite) {
  Tensor gate_up = testing::f64_tensor({1, 4}, {-1000, 1000, 1, 1});
  Tensor out = Tensor::empty({1, 2}, DType::kF64);
  swiglu_fwd(gate_up, out);
  EXPECT_EQ(out.data<double>()[0], 0.0);
  EXPECT_EQ(out.data<double>()[1], 1000.0);
}

}  // namespace
}  // namespace hydraulis::cpu
