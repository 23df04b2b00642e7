// Tensor shapes, views sharing storage, typed access checks.
#include "core/tensor.h"

#include <gtest/gtest.h>

namespace hydraulis::core {
namespace {

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::zeros({4, 3}, DType::kF32);
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.describe(), "f32[4, 3] on cpu");
  Tensor rows = t.narrow_rows(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3}));
  rows.data<float>()[0] = 5.0f;
  EXPECT_EQ(t.data<float>()[3], 5.0f);
  Tensor flat = t.reshape({12});
  EXPECT_EQ(flat.data<float>()[3], 5.0f);
  Tensor copy = t.clone();
  copy.data<float>()[3] = 1.0f;
  EXPECT_EQ(t.data<float>()[3], 5.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
}

TEST(TensorDeathTest, RejectsWrongTypeAndShape) {
  Tensor t = Tensor::zeros({2, 2}, DType::kBF16);
  EXPECT_DEATH((void)t.data<float>(), "tensor is bf16, accessed as f32");
  EXPECT_DEATH((void)t.reshape({3}), "cannot reshape bf16\\[2, 2\\] on cpu to \\[3\\]");
  EXPECT_DEATH((void)t.narrow_rows(1, 3), "out of range");
}

}  // namespace
}  // namespace hydraulis::core
