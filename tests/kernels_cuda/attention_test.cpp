// Flash-attention kernels vs the CPU twin (fp32 on the same bf16-rounded inputs): packed varlen
// batches with empty, one-token, tile-straddling and multi-tile sequences, grouped-query heads,
// head dims 64 and 128, lengths that end inside and on the kernels' 16-row m-tiles and 64-row
// tiles; out, lse, dq, dk, dv. The segment form (queries and keys in separate packed arrays,
// bottom-right causal) against cpu::attention_segments_*, and with equal offsets against the
// plain op.
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/cpu/attention.h"
#include "kernels/cuda/attention.h"

namespace hydraulis::cuda {
namespace {

using core::DType;
using core::Tensor;
using testing::CudaTest;
using testing::expect_close;

struct AttentionCase {
  std::vector<int32_t> cu;
  int H, Hkv, D;
};

class AttentionTest : public CudaTest, public ::testing::WithParamInterface<AttentionCase> {};

TEST_P(AttentionTest, ForwardAndBackwardMatchCpu) {
  const AttentionCase& param = GetParam();
  const int T = param.cu.back(), H = param.H, Hkv = param.Hkv, D = param.D;
  Tensor cu = Tensor::empty({int64_t(param.cu.size())}, DType::kI32);
  for (size_t i = 0; i < param.cu.size(); ++i) cu.data<int32_t>()[i] = param.cu[i];
  Tensor q = testing::random_bf16_values({T, H, D}, rng_, -2, 2);
  Tensor k = testing::random_bf16_values({T, Hkv, D}, rng_, -2, 2);
  Tensor v = testing::random_bf16_values({T, Hkv, D}, rng_);
  Tensor dout = testing::random_bf16_values({T, H, D}, rng_);
  Tensor out_ref = Tensor::empty({T, H, D}, DType::kF32), lse_ref = Tensor::empty({H, T}, DType::kF32);
  cpu::attention_fwd(q, k, v, cu, out_ref, lse_ref);
  // The device backward consumes its own bf16 out; the reference uses the same rounded values.
  Tensor out_rounded = testing::round_to_bf16(out_ref);
  Tensor dq_ref = Tensor::empty({T, H, D}, DType::kF32);
  Tensor dk_ref = Tensor::empty({T, Hkv, D}, DType::kF32), dv_ref = dk_ref.clone();
  cpu::attention_bwd(dout, q, k, v, out_rounded, lse_ref, cu, dq_ref, dk_ref, dv_ref);

  auto dev = [&](const Tensor& t) { return to_device_as(t, DType::kBF16, stream_); };
  Tensor qd = dev(q), kd = dev(k), vd = dev(v), doutd = dev(dout), cud = to_device(cu, stream_);
  Tensor outd = Tensor::empty({T, H, D}, DType::kBF16, core::Device::kCuda);
  Tensor lse = Tensor::empty({H, T}, DType::kF32, core::Device::kCuda);
  attention_fwd(qd, kd, vd, cud, outd, lse, stream_);
  expect_close(to_host_f32(outd, stream_), out_ref, 1e-2, "out");
  testing::expect_near_each(to_host(lse, stream_), lse_ref, 2e-2, 1e-3, "lse");
  Tensor dqd = Tensor::empty({T, H, D}, DType::kBF16, core::Device::kCuda);
  Tensor dkd = Tensor::empty({T, Hkv, D}, DType::kBF16, core::Device::kCuda);
  Tensor dvd = Tensor::empty({T, Hkv, D}, DType::kBF16, core::Device::kCuda);
  attention_bwd(doutd, qd, kd, vd, outd, lse, cud, dqd, dkd, dvd, stream_);
  expect_close(to_host_f32(dqd, stream_), dq_ref, 2e-2, "dq");
  expect_close(to_host_f32(dkd, stream_), dk_ref, 2e-2, "dk");
  expect_close(to_host_f32(dvd, stream_), dv_ref, 2e-2, "dv");
}

INSTANTIATE_TEST_SUITE_P(
    Varlen, AttentionTest,
    ::testing::Values(AttentionCase{{0, 1, 70, 70, 200, 333}, 4, 2, 64},
                      AttentionCase{{0, 129, 200}, 2, 1, 128},
                      AttentionCase{{0, 64, 128, 1100}, 3, 3, 128},
                      AttentionCase{{0, 17}, 8, 1, 64},
                      // Forward m-tiles (16 rows) ending inside, at and past a sequence end and
                      // a 64-key tile; dK/dV with K/V fragments held in registers (D = 64).
                      AttentionCase{{0, 16, 49, 177, 306, 1000}, 4, 1, 128},
                      AttentionCase{{0, 31, 95, 96, 737}, 4, 2, 64}));

// Segment form (context parallelism): queries and keys in separate packed arrays, bottom-right
// causal. Device dq/dk/dv start as random values so rows the kernels fail to write show up.
struct SegmentCase {
  std::vector<int32_t> cu_q, cu_k;
  int H, Hkv, D;
};

Tensor host_i32(const std::vector<int32_t>& values) {
  Tensor t = Tensor::empty({int64_t(values.size())}, DType::kI32);
  for (size_t i = 0; i < values.size(); ++i) t.data<int32_t>()[i] = values[i];
  return t;
}

class AttentionSegmentsTest : public CudaTest,
                              public ::testing::WithParamInterface<SegmentCase> {};

TEST_P(AttentionSegmentsTest, ForwardAndBackwardMatchCpu) {
  const SegmentCase& param = GetParam();
  const int Tq = param.cu_q.back(), Tk = param.cu_k.back();
  const int H = param.H, Hkv = param.Hkv, D = param.D;
  Tensor cu_q = host_i32(param.cu_q), cu_k = host_i32(param.cu_k);
  Tensor q = testing::random_bf16_values({Tq, H, D}, rng_, -2, 2);
  Tensor k = testing::random_bf16_values({Tk, Hkv, D}, rng_, -2, 2);
  Tensor v = testing::random_bf16_values({Tk, Hkv, D}, rng_);
  Tensor dout = testing::random_bf16_values({Tq, H, D}, rng_);
  Tensor out_ref = Tensor::empty({Tq, H, D}, DType::kF32);
  Tensor lse_ref = Tensor::empty({H, Tq}, DType::kF32);
  cpu::attention_segments_fwd(q, k, v, cu_q, cu_k, out_ref, lse_ref);
  Tensor out_rounded = testing::round_to_bf16(out_ref);
  Tensor dq_ref = Tensor::empty({Tq, H, D}, DType::kF32);
  Tensor dk_ref = Tensor::empty({Tk, Hkv, D}, DType::kF32), dv_ref = dk_ref.clone();
  cpu::attention_segments_bwd(dout, q, k, v, out_rounded, lse_ref, cu_q, cu_k, dq_ref, dk_ref,
                              dv_ref);

  auto dev = [&](const Tensor& t) { return to_device_as(t, DType::kBF16, stream_); };
  Tensor qd = dev(q), kd = dev(k), vd = dev(v), doutd = dev(dout);
  Tensor cu_qd = to_device(cu_q, stream_), cu_kd = to_device(cu_k, stream_);
  Tensor outd = dev(testing::random_bf16_values({Tq, H, D}, rng_));
  Tensor lse = Tensor::empty({H, Tq}, DType::kF32, core::Device::kCuda);
  attention_segments_fwd(qd, kd, vd, cu_qd, cu_kd, outd, lse, stream_);
  expect_close(to_host_f32(outd, stream_), out_ref, 1e-2, "out");
  testing::expect_near_each(to_host(lse, stream_), lse_ref, 2e-2, 1e-3, "lse");
  Tensor dqd = dev(testing::random_bf16_values({Tq, H, D}, rng_));
  Tensor dkd = dev(testing::random_bf16_values({Tk, Hkv, D}, rng_));
  Tensor dvd = dev(testing::random_bf16_values({Tk, Hkv, D}, rng_));
  attention_segments_bwd(doutd, qd, kd, vd, outd, lse, cu_qd, cu_kd, dqd, dkd, dvd, stream_);
  expect_close(to_host_f32(dqd, stream_), dq_ref, 2e-2, "dq");
  Tensor dk = to_host_f32(dkd, stream_), dv = to_host_f32(dvd, stream_);
  expect_close(dk, dk_ref, 2e-2, "dk");
  expect_close(dv, dv_ref, 2e-2, "dv");
  // Keys of a segment without queries are seen by nobody: exactly zero gradients.
  for (size_t s = 0; s + 1 < param.cu_q.size(); ++s) {
    if (param.cu_q[s + 1] > param.cu_q[s]) continue;
    for (int64_t i = int64_t(param.cu_k[s]) * Hkv * D; i < int64_t(param.cu_k[s + 1]) * Hkv * D;
         ++i) {
      ASSERT_EQ(dk.data<float>()[i], 0.f) << "dk of unseen key element " << i;
      ASSERT_EQ(dv.data<float>()[i], 0.f) << "dv of unseen key element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Segments, AttentionSegmentsTest,
    ::testing::Values(
        // q_len == k_len (70), a single query over 300 keys, 100 over 100, a segment of keys
        // only, 33 queries over 500 keys (diagonal inside a 64-key tile, shift not a multiple
        // of any tile).
        SegmentCase{{0, 70, 71, 171, 171, 204}, {0, 70, 370, 470, 510, 1010}, 4, 2, 64},
        SegmentCase{{0, 1, 129, 200, 330}, {0, 1, 401, 472, 1572}, 4, 2, 128},
        // cp = 2 with load-balanced chunks of one 256-token sequence: rank 0 holds chunks 0
        // and 3 (64 queries each) over keys 0..63 and 0..255.
        SegmentCase{{0, 64, 128}, {0, 64, 320}, 4, 2, 128},
        // Single-query segments only (decode-like rows), and GQA 8 : 1 at D = 64.
        SegmentCase{{0, 1, 2, 3}, {0, 5, 70, 200}, 8, 1, 64},
        SegmentCase{{0, 17, 50, 177}, {0, 40, 90, 1000}, 4, 4, 128}));

// cu_seqlens_q == cu_seqlens_k: the segment op is plain varlen causal attention (CPU plain op
// within tolerance, and bit for bit the device plain op: the same kernels).
TEST_F(AttentionSegmentsTest, EqualOffsetsReproducePlainAttention) {
  for (int D : {64, 128}) {
    const std::vector<int32_t> cu_v{0, 1, 70, 200, 333};
    const int T = cu_v.back(), H = 4, Hkv = 2;
    Tensor cu = host_i32(cu_v);
    Tensor q = testing::random_bf16_values({T, H, D}, rng_, -2, 2);
    Tensor k = testing::random_bf16_values({T, Hkv, D}, rng_, -2, 2);
    Tensor v = testing::random_bf16_values({T, Hkv, D}, rng_);
    Tensor dout = testing::random_bf16_values({T, H, D}, rng_);
    Tensor out_ref = Tensor::empty({T, H, D}, DType::kF32);
    Tensor lse_ref = Tensor::empty({H, T}, DType::kF32);
    cpu::attention_fwd(q, k, v, cu, out_ref, lse_ref);

    auto dev = [&](const Tensor& t) { return to_device_as(t, DType::kBF16, stream_); };
    auto empty = [](const core::Shape& shape, DType dt) {
      return Tensor::empty(shape, dt, core::Device::kCuda);
    };
    Tensor qd = dev(q), kd = dev(k), vd = dev(v), doutd = dev(dout), cud = to_device(cu, stream_);
    Tensor out_seg = empty({T, H, D}, DType::kBF16), out_plain = empty({T, H, D}, DType::kBF16);
    Tensor lse_seg = empty({H, T}, DType::kF32), lse_plain = empty({H, T}, DType::kF32);
    attention_segments_fwd(qd, kd, vd, cud, cud, out_seg, lse_seg, stream_);
    attention_fwd(qd, kd, vd, cud, out_plain, lse_plain, stream_);
    Tensor out_seg_h = to_host_f32(out_seg, stream_), lse_seg_h = to_host(lse_seg, stream_);
    expect_close(out_seg_h, out_ref, 1e-2, "out");
    testing::expect_near_each(lse_seg_h, lse_ref, 2e-2, 1e-3, "lse");
    testing::expect_near_each(out_seg_h, to_host_f32(out_plain, stream_), 0, 0, "out vs plain");
    testing::expect_near_each(lse_seg_h, to_host(lse_plain, stream_), 0, 0, "lse vs plain");

    Tensor dq_ref = Tensor::empty({T, H, D}, DType::kF32);
    Tensor dk_ref = Tensor::empty({T, Hkv, D}, DType::kF32), dv_ref = dk_ref.clone();
    cpu::attention_bwd(dout, q, k, v, testing::round_to_bf16(out_ref), lse_ref, cu, dq_ref, dk_ref,
                       dv_ref);
    Tensor dq_seg = empty({T, H, D}, DType::kBF16), dq_plain = empty({T, H, D}, DType::kBF16);
    Tensor dk_seg = empty({T, Hkv, D}, DType::kBF16), dk_plain = empty({T, Hkv, D}, DType::kBF16);
    Tensor dv_seg = empty({T, Hkv, D}, DType::kBF16), dv_plain = empty({T, Hkv, D}, DType::kBF16);
    attention_segments_bwd(doutd, qd, kd, vd, out_seg, lse_seg, cud, cud, dq_seg, dk_seg, dv_seg,
                           stream_);
    attention_bwd(doutd, qd, kd, vd, out_plain, lse_plain, cud, dq_plain, dk_plain, dv_plain,
                  stream_);
    const Tensor* seg[] = {&dq_seg, &dk_seg, &dv_seg};
    const Tensor* plain[] = {&dq_plain, &dk_plain, &dv_plain};
    const Tensor* ref[] = {&dq_ref, &dk_ref, &dv_ref};
    const char* names[] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; ++i) {
      Tensor got = to_host_f32(*seg[i], stream_);
      expect_close(got, *ref[i], 2e-2, names[i]);
      testing::expect_near_each(got, to_host_f32(*plain[i], stream_), 0, 0, names[i]);
    }
  }
}

}  // namespace
}  // namespace hydraulis::cuda
