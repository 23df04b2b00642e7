// Embedding gather, scatter-add with repeated ids (checked by finite differences), and the
// out-of-vocabulary errors naming id and position.
#include "kernels/cpu/embedding.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

TEST(Embedding, ForwardGathersRows) {
  std::mt19937_64 rng(21);
  Tensor table = random_tensor({5, 3}, DType::kF32, rng);  // (V, C)
  Tensor ids = testing::int32_tensor({4, 0, 4, 2});
  Tensor out = Tensor::empty({4, 3}, DType::kF32);  // (T, C)
  embedding_fwd(ids, table, out);
  const int32_t expected_rows[] = {4, 0, 4, 2};
  for (int64_t t = 0; t < 4; ++t) {
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(out.data<float>()[t * 3 + c], table.data<float>()[expected_rows[t] * 3 + c]);
    }
  }
}

TEST(Embedding, MaskedIdsGiveZeroRowsAndNoGradient) {
  std::mt19937_64 rng(23);
  Tensor table = random_tensor({4, 3}, DType::kF32, rng);
  Tensor ids = testing::int32_tensor({2, kMaskedId, 2});
  Tensor out = Tensor::empty({3, 3}, DType::kF32);
  embedding_fwd(ids, table, out);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_EQ(out.data<float>()[c], table.data<float>()[2 * 3 + c]);
    EXPECT_EQ(out.data<float>()[3 + c], 0.0f);
  }
  Tensor dtable = Tensor::zeros({4, 3}, DType::kF32);
  Tensor dout = testing::f64_tensor({3, 3}, {1, 2, 3, 100, 100, 100, 4, 5, 6});
  Tensor dout32 = Tensor::empty({3, 3}, DType::kF32);
  for (int i = 0; i < 9; ++i) dout32.data<float>()[i] = float(dout.data<double>()[i]);
  embedding_bwd(ids, dout32, dtable);
  const float expected_row2[] = {5, 7, 9};
  for (int64_t v = 0; v < 4; ++v) {
    for (int64_t c = 0; c < 3; ++c) {
      EXPECT_EQ(dtable.data<float>()[v * 3 + c], v == 2 ? expected_row2[c] : 0.0f) << v << c;
    }
  }
}

TEST(Embedding, BackwardScatterAddsRepeatedIds) {
  std::mt19937_64 rng(22);
  Tensor table = random_tensor({6, 12}, DType::kF64, rng);
  Tensor ids = testing::int32_tensor({1, 5, 1, 0, 1, 3, 5});  // T = 7, id 1 three times
  Tensor r = random_tensor({7, 12}, DType::kF64, rng);
  auto loss = [&] {
    Tensor out = Tensor::empty({7, 12}, DType::kF64);
    embedding_fwd(ids, table, out);
    return testing::weighted_sum(out, r);
  };
  Tensor dtable0 = random_tensor({6, 12}, DType::kF64, rng);
  Tensor dtable = dtable0.clone();
  embedding_bwd(ids, r, dtable);
  for (int64_t i = 0; i < dtable.numel(); ++i) {
    dtable.data<double>()[i] -= dtable0.data<double>()[i];
  }
  testing::expect_grad_matches_fd(loss, table, dtable, "dtable");
  // Row 1 is the exact sum of dout rows 0, 2 and 4; rows 2 and 4 of the table get nothing.
  for (int64_t c = 0; c < 12; ++c) {
    double sum =
        r.data<double>()[0 * 12 + c] + r.data<double>()[2 * 12 + c] + r.data<double>()[4 * 12 + c];
    EXPECT_NEAR(dtable.data<double>()[1 * 12 + c], sum, 1e-12);
    EXPECT_NEAR(dtable.data<double>()[2 * 12 + c], 0.0, 1e-12);
  }
}

TEST(Embedding, CheckIdsNamesIdAndPosition) {
  EXPECT_TRUE(embedding_check_ids(testing::int32_tensor({0, 4, 2}), 5).is_ok());
  core::Status status = embedding_check_ids(testing::int32_tensor({0, 4, 9, 7}), 5);
  ASSERT_FALSE(status.is_ok());
  EXPECT_EQ(status.code(), core::StatusCode::kOutOfRange);
  EXPECT_NE(status.message().find("token id 9 at position 2 is outside the vocabulary [0, 5)"),
            std::string::npos)
      << status.message();
}

using EmbeddingDeathTest = testing::ThreadsafeDeathTest;

TEST_F(EmbeddingDeathTest, OutOfRangeIdNamesIdAndPosition) {
  Tensor table = Tensor::zeros({5, 2}, DType::kF32);
  Tensor out = Tensor::zeros({3, 2}, DType::kF32);
  Tensor ids = testing::int32_tensor({1, -3, 2});
  EXPECT_DEATH(embedding_fwd(ids, table, out),
               "token id -3 at position 1 is outside the vocabulary \\[0, 5\\)");
}

}  // namespace
}  // namespace hydraulis::cpu
