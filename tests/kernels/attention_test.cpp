// Varlen causal GQA attention: forward against a dense masked-softmax twin written here, packed
// micro-batch equal to running each sequence alone (forward and backward), backward (dq, dk, dv)
// against fp64 finite differences, with odd sizes (T = 7, H = 3, Hkv = 1, D = 5).
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>

#include <limits>

#include "kernel_test_util.h"

namespace hydraulis::cpu {
namespace {

using core::DType;
using core::Tensor;
using testing::random_tensor;

struct Inputs {
  Tensor q, k, v;  // (T, H, D), (T, Hkv, D), (T, Hkv, D)
};

Inputs random_inputs(int64_t tokens, int64_t heads, int64_t kv_heads, int64_t head_dim, DType dtype,
                     uint64_t seed) {
  std::mt19937_64 rng(seed);
  return {random_tensor({tokens, heads, head_dim}, dtype, rng, -2, 2),
          random_tensor({tokens, kv_heads, head_dim}, dtype, rng, -2, 2),
          random_tensor({tokens, kv_heads, head_dim}, dtype, rng)};
}

// Dense twin: per sequence, full (L, L) score matrix, −inf above the diagonal, softmax, · V.
Tensor dense_attention(const Inputs& in, const std::vector<int32_t>& cu) {
  int64_t tokens = in.q.size(0), heads = in.q.size(1), kv_heads = in.k.size(1);
  int64_t hd = in.q.size(2);
  Tensor out = Tensor::zeros({tokens, heads, hd}, DType::kF64);
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    int64_t start = cu[b], len = cu[b + 1] - cu[b];
    for (int64_t h = 0; h < heads; ++h) {
      int64_t g = h / (heads / kv_heads);
      std::vector<double> s(static_cast<size_t>(len * len));
      for (int64_t i = 0; i < len; ++i) {
        for (int64_t j = 0; j < len; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < hd; ++c) {
            dot += testing::value_at(in.q, ((start + i) * heads + h) * hd + c) *
                   testing::value_at(in.k, ((start + j) * kv_heads + g) * hd + c);
          }
          s[i * len + j] =
              j <= i ? dot / std::sqrt(double(hd)) : -std::numeric_limits<double>::infinity();
        }
        double max = *std::max_element(&s[i * len], &s[i * len] + len), sum = 0;
        for (int64_t j = 0; j < len; ++j) sum += std::exp(s[i * len + j] - max);
        for (int64_t j = 0; j < len; ++j) {
          double p = std::exp(s[i * len + j] - max) / sum;
          for (int64_t c = 0; c < hd; ++c) {
            out.data<double>()[((start + i) * heads + h) * hd + c] +=
                p * testing::value_at(in.v, ((start + j) * kv_heads + g) * hd + c);
          }
        }
      }
    }
  }
  return out;
}

TEST(Attention, ForwardMatchesDenseMaskedSoftmax) {
  // Sequences of 1, 3, 0 and 4 tokens; 6 heads sharing 2 kv heads.
  std::vector<int32_t> cu = {0, 1, 4, 4, 8};
  for (DType dtype : {DType::kF32, DType::kF64}) {
    Inputs in = random_inputs(8, 6, 2, 5, dtype, 61);
    Tensor out = Tensor::empty({8, 6, 5}, dtype);
    Tensor lse = Tensor::empty({6, 8}, dtype);
    attention_fwd(in.q, in.k, in.v, testing::int32_tensor(cu), out, lse);
    testing::expect_near_all(out, dense_attention(in, cu), dtype == DType::kF32 ? 1e-5 : 1e-13,
                             "out");
    // Token 0 is a 1-token sequence: out = v_0 of its kv head, lse = its only score.
    for (int64_t h = 0; h < 6; ++h) {
      double score = 0;
      for (int64_t c = 0; c < 5; ++c) {
        score += testing::value_at(in.q, h * 5 + c) * testing::value_at(in.k, (h / 3) * 5 + c);
      }
      EXPECT_NEAR(testing::value_at(lse, h * 8 + 0), score / std::sqrt(5.0), 1e-5);
    }
  }
}

TEST(Attention, PackedEqualsEachSequenceAlone) {
  const int64_t tokens = 7, heads = 3, kv_heads = 1, hd = 5;
  Inputs in = random_inputs(tokens, heads, kv_heads, hd, DType::kF64, 62);
  std::mt19937_64 rng(63);
  Tensor dout = random_tensor({tokens, heads, hd}, DType::kF64, rng);
  auto run = [&](int64_t begin, int64_t end, const std::vector<int32_t>& cu) {
    int64_t n = end - begin;
    std::vector<Tensor> r = {Tensor::empty({n, heads, hd}, DType::kF64),      // out
                             Tensor::empty({heads, n}, DType::kF64),          // lse
                             Tensor::empty({n, heads, hd}, DType::kF64),      // dq
                             Tensor::empty({n, kv_heads, hd}, DType::kF64),   // dk
                             Tensor::empty({n, kv_heads, hd}, DType::kF64)};  // dv
    Tensor q = in.q.narrow_rows(begin, end), k = in.k.narrow_rows(begin, end);
    Tensor v = in.v.narrow_rows(begin, end), d = dout.narrow_rows(begin, end);
    Tensor offsets = testing::int32_tensor(cu);
    attention_fwd(q, k, v, offsets, r[0], r[1]);
    attention_bwd(d, q, k, v, r[0], r[1], offsets, r[2], r[3], r[4]);
    return r;
  };
  std::vector<Tensor> packed = run(0, 7, {0, 3, 7});
  std::vector<Tensor> first = run(0, 3, {0, 3});
  std::vector<Tensor> second = run(3, 7, {0, 4});
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  for (int i : {0, 2, 3, 4}) {
    testing::expect_near_all(packed[i].narrow_rows(0, 3), first[i], 1e-14, names[i]);
    testing::expect_near_all(packed[i].narrow_rows(3, 7), second[i], 1e-14, names[i]);
  }
  for (int64_t h = 0; h < heads; ++h) {  // lse is (H, T)
    for (int64_t t = 0; t < 7; ++t) {
      double alone =
          t < 3 ? first[1].data<double>()[h * 3 + t] : second[1].data<double>()[h * 4 + (t - 3)];
      EXPECT_NEAR(packed[1].data<double>()[h * 7 + t], alone, 1e-14);
    }
  }
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  const int64_t tokens = 7, heads = 3, kv_heads = 1, hd = 5;
  Tensor cu = testing::int32_tensor({0, 3, 7});
  for (auto [h, kvh] : {std::pair<int64_t, int64_t>{heads, kv_heads}, {4, 2}}) {
    Inputs in = random_inputs(tokens, h, kvh, hd, DType::kF64, 64 + uint64_t(kvh));
    std::mt19937_64 rng(65);
    Tensor r = random_tensor({tokens, h, hd}, DType::kF64, rng);
    auto loss = [&] {
      Tensor out = Tensor::empty({tokens, h, hd}, DType::kF64);
      Tensor lse = Tensor::empty({h, tokens}, DType::kF64);
      attention_fwd(in.q, in.k, in.v, cu, out, lse);
      return testing::weighted_sum(out, r);
    };
    Tensor out = Tensor::empty({tokens, h, hd}, DType::kF64);
    Tensor lse = Tensor::empty({h, tokens}, DType::kF64);
    attention_fwd(in.q, in.k, in.v, cu, out, lse);
    Tensor dq = testing::nan_tensor({tokens, h, hd}, DType::kF64);
    Tensor dk = testing::nan_tensor({tokens, kvh, hd}, DType::kF64);
    Tensor dv = testing::nan_tensor({tokens, kvh, hd}, DType::kF64);
    attention_bwd(r, in.q, in.k, in.v, out, lse, cu, dq, dk, dv);
    testing::expect_grad_matches_fd(loss, in.q, dq, "dq");
    testing::expect_grad_matches_fd(loss, in.k, dk, "dk");
    testing::expect_grad_matches_fd(loss, in.v, dv, "dv");
  }
}

using AttentionDeathTest = testing::ThreadsafeDeathTest;

TEST_F(AttentionDeathTest, KvHeadsMustDivideHeads) {
  Inputs in = random_inputs(2, 3, 2, 4, DType::kF32, 66);
  Tensor out = Tensor::empty({2, 3, 4}, DType::kF32), lse = Tensor::empty({3, 2}, DType::kF32);
  EXPECT_DEATH(attention_fwd(in.q, in.k, in.v, testing::int32_tensor({0, 2}), out, lse),
               "num_kv_heads = 2 must divide num_heads = 3");
}

}  // namespace
}  // namespace hydraulis::cpu
