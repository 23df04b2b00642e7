// RoPE: identity at position 0, HF rotate-half values by hand, positions restarting per sequence,
// backward against fp64 finite differences and as the exact inverse rotation.
#include "kernels/cpu/rope.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

constexpr double kTheta = 10000.0;

TEST(Rope, PositionZeroIsIdentity) {
  std::mt19937_64 rng(41);
  for (DType dtype : {DType::kF32, DType::kF64}) {
    Tensor x = random_tensor({3, 2, 6}, dtype, rng);  // three 1-token sequences: all position 0
    Tensor y = Tensor::empty({3, 2, 6}, dtype);
    rope_fwd(x, testing::int32_tensor({0, 1, 2, 3}), kTheta, y);
    testing::expect_near_all(y, x, 0.0, "y");
  }
}

TEST(Rope, HandValuesFollowHuggingFaceRotateHalf) {
  // One sequence of 2 tokens, D = 4: inv_freq = [1, 10000^(−1/2)] = [1, 0.01]. Token 1 (position 1)
  // x = [1, 2, 3, 4]: x1 = [1, 2], x2 = [3, 4]; y = [x1·cos − x2·sin, x2·cos + x1·sin].
  Tensor x = testing::f64_tensor({2, 1, 4}, {9, 9, 9, 9, 1, 2, 3, 4});
  Tensor y = Tensor::empty({2, 1, 4}, DType::kF64);
  rope_fwd(x, testing::int32_tensor({0, 2}), kTheta, y);
  const double* out = y.data<double>() + 4;
  EXPECT_NEAR(out[0], 1 * std::cos(1.0) - 3 * std::sin(1.0), 1e-14);
  EXPECT_NEAR(out[1], 2 * std::cos(0.01) - 4 * std::sin(0.01), 1e-14);
  EXPECT_NEAR(out[2], 3 * std::cos(1.0) + 1 * std::sin(1.0), 1e-14);
  EXPECT_NEAR(out[3], 4 * std::cos(0.01) + 2 * std::sin(0.01), 1e-14);
}

TEST(Rope, PositionsRestartPerSequence) {
  std::mt19937_64 rng(42);
  Tensor x = random_tensor({7, 3, 8}, DType::kF64, rng);  // sequences of 3 and 4 tokens
  Tensor packed = Tensor::empty({7, 3, 8}, DType::kF64);
  rope_fwd(x, testing::int32_tensor({0, 3, 7}), 500.0, packed);
  Tensor first = Tensor::empty({3, 3, 8}, DType::kF64);
  Tensor second = Tensor::empty({4, 3, 8}, DType::kF64);
  rope_fwd(x.narrow_rows(0, 3), testing::int32_tensor({0, 3}), 500.0, first);
  rope_fwd(x.narrow_rows(3, 7), testing::int32_tensor({0, 4}), 500.0, second);
  testing::expect_near_all(packed.narrow_rows(0, 3), first, 0.0, "sequence 0");
  testing::expect_near_all(packed.narrow_rows(3, 7), second, 0.0, "sequence 1");
  // Token 3 starts sequence 1, so it is at position 0 and unrotated.
  testing::expect_near_all(packed.narrow_rows(3, 4), x.narrow_rows(3, 4), 0.0, "token 3");
}

TEST(Rope, ExplicitPositionsEqualSequencePositions) {
  std::mt19937_64 rng(43);
  Tensor x = random_tensor({7, 2, 6}, DType::kF64, rng);  // sequences of 3 and 4 tokens
  Tensor by_cu = Tensor::empty(x.shape(), DType::kF64), by_pos = Tensor::empty(x.shape(), DType::kF64);
  rope_fwd(x, testing::int32_tensor({0, 3, 7}), 10000.0, by_cu);
  rope_positions_fwd(x, testing::int32_tensor({0, 1, 2, 0, 1, 2, 3}), 10000.0, by_pos);
  testing::expect_near_all(by_pos, by_cu, 0.0, "forward");
  // A chunk from the middle of a sequence (positions 5, 6) rotates like those rows of the whole.
  Tensor whole = random_tensor({7, 2, 6}, DType::kF64, rng), rotated = Tensor::empty(whole.shape(), DType::kF64);
  rope_fwd(whole, testing::int32_tensor({0, 7}), 10000.0, rotated);
  Tensor chunk = Tensor::empty({2, 2, 6}, DType::kF64);
  rope_positions_fwd(whole.narrow_rows(5, 7), testing::int32_tensor({5, 6}), 10000.0, chunk);
  testing::expect_near_all(chunk, rotated.narrow_rows(5, 7), 0.0, "chunk");
  Tensor back = Tensor::empty({2, 2, 6}, DType::kF64);
  rope_positions_bwd(chunk, testing::int32_tensor({5, 6}), 10000.0, back);
  testing::expect_near_all(back, whole.narrow_rows(5, 7), 1e-14, "inverse");
}

TEST(Rope, BackwardMatchesFiniteDifferencesAndInvertsForward) {
  std::mt19937_64 rng(43);
  Tensor cu = testing::int32_tensor({0, 3, 7});
  Tensor x = random_tensor({7, 3, 4}, DType::kF64, rng);
  Tensor r = random_tensor({7, 3, 4}, DType::kF64, rng);
  auto loss = [&] {
    Tensor y = Tensor::empty({7, 3, 4}, DType::kF64);
    rope_fwd(x, cu, kTheta, y);
    return testing::weighted_sum(y, r);
  };
  Tensor dx = Tensor::empty({7, 3, 4}, DType::kF64);
  rope_bwd(r, cu, kTheta, dx);
  testing::expect_grad_matches_fd(loss, x, dx, "dx");
  // In place: rotating forward then backward gives x back.
  Tensor y = x.clone();
  rope_fwd(y, cu, kTheta, y);
  rope_bwd(y, cu, kTheta, y);
  testing::expect_near_all(y, x, 1e-14, "bwd(fwd(x))");
}

// The fused q/k/v split equals rope on q's and k's column blocks and a copy of v's; its backward
// (merge) matches fp64 finite differences of a weighted sum of the split's outputs.
TEST(Rope, QkvSplitRotatesQAndKCopiesVAndMergeIsItsGradient) {
  std::mt19937_64 rng(44);
  const int64_t T = 7, H = 2, Hkv = 1, D = 4, W = (H + 2 * Hkv) * D;
  Tensor cu = testing::int32_tensor({0, 3, 7});
  for (bool explicit_positions : {false, true}) {
    Tensor pos = explicit_positions ? testing::int32_tensor({5, 9, 0, 3, 3, 1, 12}) : Tensor();
    Tensor qkv = random_tensor({T, W}, DType::kF64, rng);
    Tensor q = Tensor::empty({T, H, D}, DType::kF64), k = Tensor::empty({T, Hkv, D}, DType::kF64);
    Tensor v = Tensor::empty({T, Hkv, D}, DType::kF64);
    qkv_split_rope(qkv, cu, pos, kTheta, q, k, v);
    // Reference: the column blocks, q and k rotated.
    Tensor q_ref = Tensor::empty({T, H, D}, DType::kF64), k_ref = Tensor::empty({T, Hkv, D}, DType::kF64);
    Tensor v_ref = Tensor::empty({T, Hkv, D}, DType::kF64);
    for (int64_t t = 0; t < T; ++t) {
      const double* row = qkv.data<double>() + t * W;
      std::copy(row, row + H * D, q_ref.data<double>() + t * H * D);
      std::copy(row + H * D, row + (H + Hkv) * D, k_ref.data<double>() + t * Hkv * D);
      std::copy(row + (H + Hkv) * D, row + W, v_ref.data<double>() + t * Hkv * D);
    }
    if (explicit_positions) {
      rope_positions_fwd(q_ref, pos, kTheta, q_ref);
      rope_positions_fwd(k_ref, pos, kTheta, k_ref);
    } else {
      rope_fwd(q_ref, cu, kTheta, q_ref);
      rope_fwd(k_ref, cu, kTheta, k_ref);
    }
    testing::expect_near_all(q, q_ref, 0.0, "q");
    testing::expect_near_all(k, k_ref, 0.0, "k");
    testing::expect_near_all(v, v_ref, 0.0, "v");

    Tensor rq = random_tensor({T, H, D}, DType::kF64, rng), rk = random_tensor({T, Hkv, D}, DType::kF64, rng);
    Tensor rv = random_tensor({T, Hkv, D}, DType::kF64, rng);
    auto loss = [&] {
      qkv_split_rope(qkv, cu, pos, kTheta, q, k, v);
      return testing::weighted_sum(q, rq) + testing::weighted_sum(k, rk) + testing::weighted_sum(v, rv);
    };
    Tensor dqkv = Tensor::empty({T, W}, DType::kF64);
    qkv_merge_rope_bwd(rq, rk, rv, cu, pos, kTheta, dqkv);
    testing::expect_grad_matches_fd(loss, qkv, dqkv, "dqkv");
  }
}

using RopeDeathTest = testing::ThreadsafeDeathTest;

TEST_F(RopeDeathTest, RejectsOddHeadDimAndBadOffsets) {
  Tensor odd = Tensor::zeros({2, 1, 3}, DType::kF32);
  EXPECT_DEATH(rope_fwd(odd, testing::int32_tensor({0, 2}), kTheta, odd), "must be even");
  Tensor x = Tensor::zeros({2, 1, 4}, DType::kF32);
  EXPECT_DEATH(rope_fwd(x, testing::int32_tensor({0, 3}), kTheta, x),
               "cu_seqlens\\[1\\] = 3 but the micro-batch has 2 tokens");
}

}  // namespace
}  // namespace hydraulis::cpu
