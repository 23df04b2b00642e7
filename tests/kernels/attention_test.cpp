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

// Segment form: a sequence's query chunk attends to the sequence prefix (bottom-right causal).
// Queries at positions 2..4 of a 6-token sequence and the last 1 of a 3-token one, with keys given
// as each segment's prefix, must give exactly the rows of the plain attention over whole sequences.
TEST(AttentionSegments, ChunkOverPrefixEqualsWholeSequenceRows) {
  const int64_t heads = 4, kv_heads = 2, hd = 5;
  Inputs in = random_inputs(9, heads, kv_heads, hd, DType::kF64, 71);  // sequences [0,6), [6,9)
  std::mt19937_64 rng(72);
  Tensor dout = random_tensor({9, heads, hd}, DType::kF64, rng);
  Tensor out = Tensor::empty({9, heads, hd}, DType::kF64), lse = Tensor::empty({heads, 9}, DType::kF64);
  Tensor cu = testing::int32_tensor({0, 6, 9});
  attention_fwd(in.q, in.k, in.v, cu, out, lse);
  Tensor dq = Tensor::empty({9, heads, hd}, DType::kF64);
  Tensor dk = Tensor::empty({9, kv_heads, hd}, DType::kF64);
  Tensor dv = Tensor::empty({9, kv_heads, hd}, DType::kF64);
  attention_bwd(dout, in.q, in.k, in.v, out, lse, cu, dq, dk, dv);

  // Queries: rows 2, 3, 4 (segment 0) and 8 (segment 1); keys: rows 0..4 and 6..8.
  const std::vector<int64_t> q_rows = {2, 3, 4, 8}, k_rows = {0, 1, 2, 3, 4, 6, 7, 8};
  auto pick = [](const Tensor& t, const std::vector<int64_t>& rows) {
    const int64_t w = t.numel() / t.size(0);
    Tensor r = Tensor::empty({int64_t(rows.size()), t.size(1), t.size(2)}, DType::kF64);
    for (size_t i = 0; i < rows.size(); ++i) {
      std::copy_n(t.data<double>() + rows[i] * w, w, r.data<double>() + int64_t(i) * w);
    }
    return r;
  };
  Tensor sq = pick(in.q, q_rows), sk = pick(in.k, k_rows), sv = pick(in.v, k_rows);
  Tensor sdout = pick(dout, q_rows), sout = Tensor::empty(sq.shape(), DType::kF64);
  Tensor slse = Tensor::empty({heads, 4}, DType::kF64);
  Tensor cq = testing::int32_tensor({0, 3, 4}), ck = testing::int32_tensor({0, 5, 8});
  attention_segments_fwd(sq, sk, sv, cq, ck, sout, slse);
  testing::expect_near_all(sout, pick(out, q_rows), 1e-13, "segment out");
  for (int64_t h = 0; h < heads; ++h) {
    for (size_t i = 0; i < q_rows.size(); ++i) {
      EXPECT_NEAR(slse.data<double>()[h * 4 + int64_t(i)], lse.data<double>()[h * 9 + q_rows[i]],
                  1e-13);
    }
  }
  // Backward with dout only on the chunk's rows: dq equals the whole-sequence dq on those rows,
  // dk/dv equal the whole-sequence backward driven by the same dout restricted to those rows.
  Tensor sdq = Tensor::empty(sq.shape(), DType::kF64), sdk = Tensor::empty(sk.shape(), DType::kF64);
  Tensor sdv = Tensor::empty(sv.shape(), DType::kF64);
  attention_segments_bwd(sdout, sq, sk, sv, sout, slse, cq, ck, sdq, sdk, sdv);
  Tensor masked = Tensor::zeros(dout.shape(), DType::kF64);
  const int64_t w = heads * hd;
  for (int64_t r : q_rows) std::copy_n(dout.data<double>() + r * w, w, masked.data<double>() + r * w);
  attention_bwd(masked, in.q, in.k, in.v, out, lse, cu, dq, dk, dv);
  testing::expect_near_all(sdq, pick(dq, q_rows), 1e-12, "segment dq");
  testing::expect_near_all(sdk, pick(dk, k_rows), 1e-12, "segment dk");
  testing::expect_near_all(sdv, pick(dv, k_rows), 1e-12, "segment dv");
}

TEST(AttentionSegments, BackwardMatchesFiniteDifferences) {
  const int64_t heads = 2, kv_heads = 1, hd = 4;
  Tensor cq = testing::int32_tensor({0, 2, 3}), ck = testing::int32_tensor({0, 4, 7});
  std::mt19937_64 rng(73);
  Tensor q = random_tensor({3, heads, hd}, DType::kF64, rng, -2, 2);
  Tensor k = random_tensor({7, kv_heads, hd}, DType::kF64, rng, -2, 2);
  Tensor v = random_tensor({7, kv_heads, hd}, DType::kF64, rng);
  Tensor r = random_tensor({3, heads, hd}, DType::kF64, rng);
  auto loss = [&] {
    Tensor out = Tensor::empty({3, heads, hd}, DType::kF64);
    Tensor lse = Tensor::empty({heads, 3}, DType::kF64);
    attention_segments_fwd(q, k, v, cq, ck, out, lse);
    return testing::weighted_sum(out, r);
  };
  Tensor out = Tensor::empty({3, heads, hd}, DType::kF64), lse = Tensor::empty({heads, 3}, DType::kF64);
  attention_segments_fwd(q, k, v, cq, ck, out, lse);
  Tensor dq = testing::nan_tensor(q.shape(), DType::kF64), dk = testing::nan_tensor(k.shape(), DType::kF64);
  Tensor dv = testing::nan_tensor(v.shape(), DType::kF64);
  attention_segments_bwd(r, q, k, v, out, lse, cq, ck, dq, dk, dv);
  testing::expect_grad_matches_fd(loss, q, dq, "dq");
  testing::expect_grad_matches_fd(loss, k, dk, "dk");
  testing::expect_grad_matches_fd(loss, v, dv, "dv");
}

using AttentionDeathTest = testing::ThreadsafeDeathTest;

TEST_F(AttentionDeathTest, SegmentNeedsAtLeastAsManyKeysAsQueries) {
  Inputs in = random_inputs(3, 2, 1, 4, DType::kF32, 74);
  Tensor k = in.k.narrow_rows(0, 2), v = in.v.narrow_rows(0, 2);
  Tensor out = Tensor::empty({3, 2, 4}, DType::kF32), lse = Tensor::empty({2, 3}, DType::kF32);
  EXPECT_DEATH(attention_segments_fwd(in.q, k, v, testing::int32_tensor({0, 3}),
                                      testing::int32_tensor({0, 2}), out, lse),
               "segment 0 has 3 queries but only 2 keys");
}

TEST_F(AttentionDeathTest, KvHeadsMustDivideHeads) {
  Inputs in = random_inputs(2, 3, 2, 4, DType::kF32, 66);
  Tensor out = Tensor::empty({2, 3, 4}, DType::kF32), lse = Tensor::empty({3, 2}, DType::kF32);
  EXPECT_DEATH(attention_fwd(in.q, in.k, in.v, testing::int32_tensor({0, 2}), out, lse),
               "num_kv_heads = 2 must divide num_heads = 3");
}

}  // namespace
}  // namespace hydraulis::cpu
