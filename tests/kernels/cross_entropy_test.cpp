// Cross-entropy: a hand-computed 3-token example (value and grads), ignore index, the split
// invariance of the global-token normalisation, in-place backward, finite differences, and
// stability over a GPT-2-sized vocabulary.
#include "kernels/cpu/cross_entropy.h"

#include <gtest/gtest.h>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

struct Result {
  Tensor losses, lse, loss, dlogits;
};

Result run(const Tensor& logits, const Tensor& targets, int64_t global_tokens) {
  int64_t tokens = logits.size(0);
  DType dtype = logits.dtype();
  Result r{Tensor::empty({tokens}, dtype), Tensor::empty({tokens}, dtype),
           Tensor::empty({1}, dtype), Tensor::empty(logits.shape(), dtype)};
  cross_entropy_fwd(logits, targets, kIgnoreIndex, global_tokens, r.losses, r.lse, r.loss);
  cross_entropy_bwd(logits, targets, r.lse, kIgnoreIndex, global_tokens, r.dlogits);
  return r;
}

TEST(CrossEntropy, HandComputedThreeTokens) {
  // Token 0: logits [0, 0, 0], target 0 → p = 1/3, loss ln 3.
  // Token 1: logits [ln 2, 0, 0], target 0 → p = 2/4, loss ln 2.
  // Token 2: ignored. The step has 4 tokens in all (another micro-batch holds the 4th):
  // loss = (ln 3 + ln 2) / 4 = ln 6 / 4.
  Tensor logits = testing::f64_tensor({3, 3}, {0, 0, 0, std::log(2.0), 0, 0, 5, -1, 2});
  Tensor targets = testing::int32_tensor({0, 0, kIgnoreIndex});
  Result r = run(logits, targets, 4);
  EXPECT_NEAR(r.loss.data<double>()[0], 0.44793986730701374, 1e-15);
  EXPECT_NEAR(r.losses.data<double>()[0], 1.0986122886681098, 1e-15);
  EXPECT_NEAR(r.losses.data<double>()[1], 0.6931471805599453, 1e-15);
  EXPECT_EQ(r.losses.data<double>()[2], 0.0);
  const double expected[] = {
      (1.0 / 3 - 1) / 4, (1.0 / 3) / 4, (1.0 / 3) / 4, (0.5 - 1) / 4, 0.25 / 4, 0.25 / 4, 0, 0, 0};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(r.dlogits.data<double>()[i], expected[i], 1e-15) << i;
}

// Vocab-parallel pieces: two shards of a 3-word vocabulary ([0, 1] and [2]); each shard's lse
// and nll joined as the model does (lse = logsumexp of the shards' lse, nll = lse − lse_owner +
// nll_owner) equal the whole-vocabulary loss, and each shard's backward with the global lse and
// kTargetOnOtherShard rows equals its columns of the whole-vocabulary gradient.
TEST(CrossEntropy, VocabShardsJoinToTheWholeLossAndGradient) {
  Tensor logits = testing::f64_tensor({2, 3}, {0.5, -1, 2, 1, 0.25, -0.5});
  Tensor targets = testing::int32_tensor({2, 1});
  Result whole = run(logits, targets, 5);
  Tensor left = testing::f64_tensor({2, 2}, {0.5, -1, 1, 0.25});
  Tensor right = testing::f64_tensor({2, 1}, {2, -0.5});
  Result l = run(left, testing::int32_tensor({kTargetOnOtherShard, 1}), 5);
  Result r = run(right, testing::int32_tensor({0, kTargetOnOtherShard}), 5);
  Tensor global_lse = Tensor::empty({2}, DType::kF64);
  for (int64_t t = 0; t < 2; ++t) {
    double a = l.lse.data<double>()[t], b = r.lse.data<double>()[t];
    double g = std::max(a, b) + std::log(std::exp(a - std::max(a, b)) + std::exp(b - std::max(a, b)));
    global_lse.data<double>()[t] = g;
    EXPECT_NEAR(g, whole.lse.data<double>()[t], 1e-14);
    const Result& owner = t == 0 ? r : l;
    double nll = g - owner.lse.data<double>()[t] + l.losses.data<double>()[t] + r.losses.data<double>()[t];
    EXPECT_NEAR(nll, whole.losses.data<double>()[t], 1e-14);
  }
  Tensor dl = Tensor::empty({2, 2}, DType::kF64), dr = Tensor::empty({2, 1}, DType::kF64);
  cross_entropy_bwd(left, testing::int32_tensor({kTargetOnOtherShard, 1}), global_lse, kIgnoreIndex, 5, dl);
  cross_entropy_bwd(right, testing::int32_tensor({0, kTargetOnOtherShard}), global_lse, kIgnoreIndex, 5, dr);
  for (int64_t t = 0; t < 2; ++t) {
    EXPECT_NEAR(dl.data<double>()[t * 2 + 0], whole.dlogits.data<double>()[t * 3 + 0], 1e-15);
    EXPECT_NEAR(dl.data<double>()[t * 2 + 1], whole.dlogits.data<double>()[t * 3 + 1], 1e-15);
    EXPECT_NEAR(dr.data<double>()[t], whole.dlogits.data<double>()[t * 3 + 2], 1e-15);
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(71);
  Tensor logits = random_tensor({7, 11}, DType::kF64, rng, -3, 3);
  Tensor targets = testing::int32_tensor({3, 10, kIgnoreIndex, 0, 7, 7, kIgnoreIndex});
  auto loss = [&] { return run(logits, targets, 9).loss.data<double>()[0]; };
  Tensor dlogits = run(logits, targets, 9).dlogits;
  testing::expect_grad_matches_fd(loss, logits, dlogits, "dlogits");
}

TEST(CrossEntropy, SplittingIntoMicroBatchesKeepsLossAndGrads) {
  std::mt19937_64 rng(72);
  Tensor logits = random_tensor({7, 13}, DType::kF64, rng, -3, 3);
  Tensor targets = testing::int32_tensor({1, 12, 4, kIgnoreIndex, 0, 5, 9});
  const int64_t global_tokens = 6;  // non-ignored targets of the whole step
  Result whole = run(logits, targets, global_tokens);
  double split_loss = 0;
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 2}, {2, 3}, {3, 7}}) {
    Tensor part_targets = testing::int32_tensor(
        std::vector<int32_t>(targets.data<int32_t>() + begin, targets.data<int32_t>() + end));
    Result part = run(logits.narrow_rows(begin, end), part_targets, global_tokens);
    split_loss += part.loss.data<double>()[0];
    testing::expect_near_all(part.dlogits, whole.dlogits.narrow_rows(begin, end), 1e-15, "dlogits");
  }
  EXPECT_NEAR(split_loss, whole.loss.data<double>()[0], 1e-14);
  // And the whole-step value is the mean over the 6 counted tokens.
  double sum = 0;
  for (int64_t t = 0; t < 7; ++t) sum += whole.losses.data<double>()[t];
  EXPECT_NEAR(whole.loss.data<double>()[0], sum / 6, 1e-15);
}

TEST(CrossEntropy, InPlaceBackwardAndLargeVocabulary) {
  const int64_t vocab = 50304;  // GPT-2's 50257 padded to a multiple of 128
  std::mt19937_64 rng(73);
  Tensor logits = random_tensor({3, vocab}, DType::kF32, rng, -30, 30);
  logits.data<float>()[5] = 3000.0f;  // would overflow exp() without the max shift
  Tensor targets = testing::int32_tensor({5, 50256, 17});
  Result r = run(logits, targets, 3);
  EXPECT_TRUE(std::isfinite(r.loss.data<float>()[0]));
  EXPECT_NEAR(r.losses.data<float>()[0], 0.0, 1e-6);
  Tensor in_place = logits.clone();
  cross_entropy_bwd(in_place, targets, r.lse, kIgnoreIndex, 3, in_place);
  testing::expect_near_all(in_place, r.dlogits, 0.0, "in-place dlogits");
  double row_sum = 0;  // softmax − one-hot sums to 0 per row
  for (int64_t c = 0; c < vocab; ++c) row_sum += r.dlogits.data<float>()[vocab + c];
  EXPECT_NEAR(row_sum, 0.0, 1e-6);
}

using CrossEntropyDeathTest = testing::ThreadsafeDeathTest;

TEST_F(CrossEntropyDeathTest, RejectsTargetOutsideVocabulary) {
  Tensor logits = Tensor::zeros({2, 4}, DType::kF32);
  Tensor losses = Tensor::empty({2}, DType::kF32), lse = Tensor::empty({2}, DType::kF32);
  Tensor loss = Tensor::empty({1}, DType::kF32);
  EXPECT_DEATH(
      cross_entropy_fwd(logits, testing::int32_tensor({1, 4}), kIgnoreIndex, 2, losses, lse, loss),
      "target 4 at position 1 is outside the vocabulary \\[0, 4\\)");
}

}  // namespace
}  // namespace hydraulis::cpu
