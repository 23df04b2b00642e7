// Block copy: a 2×3 block into the middle of a 4×5 matrix, assigned then accumulated, by hand;
// 1-D tensors as (n, 1) columns; blocks outside the view refused.
#include "kernels/cpu/block_copy.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;

TEST(BlockCopy, AssignThenAccumulateByHand) {
  Tensor src = Tensor::empty({3, 4}, DType::kF32);
  for (int i = 0; i < 12; ++i) src.data<float>()[i] = float(i);  // src[r, c] = 4r + c
  Tensor dst = Tensor::zeros({4, 5}, DType::kF32);
  const Block2d block{1, 1, 2, 1, 2, 3};  // src rows 1..2, cols 1..3 → dst rows 2..3, cols 1..3
  copy_block(src, dst, block, BlockCopy::kAssign);
  copy_block(src, dst, block, BlockCopy::kAccumulate);
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 5; ++c) {
      const bool inside = r >= 2 && c >= 1 && c <= 3;
      const float expected = inside ? 2.0f * float(4 * (r - 1) + c) : 0.0f;
      EXPECT_EQ(dst.data<float>()[r * 5 + c], expected) << r << " " << c;
    }
  }
}

TEST(BlockCopy, VectorsAreColumns) {
  Tensor src = testing::f64_tensor({4}, {1, 2, 3, 4});
  Tensor dst = Tensor::zeros({6}, DType::kF64);
  copy_block(src, dst, {1, 0, 3, 0, 3, 1}, BlockCopy::kAssign);
  const double expected[] = {0, 0, 0, 2, 3, 4};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(dst.data<double>()[i], expected[i]);
}

using BlockCopyDeathTest = testing::ThreadsafeDeathTest;

TEST_F(BlockCopyDeathTest, BlockOutsideTheViewIsRefused) {
  Tensor src = Tensor::zeros({2, 2}, DType::kF32), dst = Tensor::zeros({2, 2}, DType::kF32);
  EXPECT_DEATH(copy_block(src, dst, {0, 1, 0, 0, 1, 2}, BlockCopy::kAssign), "outside");
}

}  // namespace
}  // namespace hydraulis::cpu
