// CUDA elementwise/reduction ops vs their CPU twins on identical (bf16-rounded) inputs: RMSNorm,
// RoPE, SwiGLU, embedding, cross-entropy, AdamW, grad norm. Sizes are odd and chosen to take
// both the 16-byte vector path (width % 8 == 0) and the scalar path of every kernel.
#include <gtest/gtest.h>

#include <cstring>

#include <vector>

#include "cuda_test_util.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/block_copy.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"

namespace hydraulis::cuda {
namespace {

using core::DType;
using core::Tensor;
using testing::CudaTest;
using testing::expect_close;
using testing::kBf16Eps;
using testing::random_bf16_values;

Tensor dev_bf16(const Tensor& host, cudaStream_t s) { return to_device_as(host, DType::kBF16, s); }
Tensor empty_dev(const core::Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, core::Device::kCuda);
}

class RmsNormTest : public CudaTest, public ::testing::WithParamInterface<std::pair<int, int>> {};

// (T, C): T = 2000 gives 63 chunks of 32 rows (the reduction's lanes take two each); C = 8200 takes
// the two-kernel vector path (C > 8192), 1003 the scalar one.
TEST_P(RmsNormTest, ForwardAndBackwardMatchCpu) {
  const auto [T, C] = GetParam();
  Tensor x = random_bf16_values({T, C}, rng_, -2, 2);
  Tensor w = random_bf16_values({C}, rng_, 0.5, 1.5);
  Tensor dy = random_bf16_values({T, C}, rng_);
  Tensor y_ref = Tensor::empty({T, C}, DType::kF32), rstd_ref = Tensor::empty({T}, DType::kF32);
  cpu::rms_norm_fwd(x, w, 1e-5, y_ref, rstd_ref);
  Tensor dx_ref = Tensor::empty({T, C}, DType::kF32);
  Tensor dw_init = random_bf16_values({C}, rng_);
  Tensor dw_ref = dw_init.clone();
  cpu::rms_norm_bwd(dy, x, w, rstd_ref, dx_ref, dw_ref);

  Tensor xd = dev_bf16(x, stream_), wd = dev_bf16(w, stream_), dyd = dev_bf16(dy, stream_);
  Tensor yd = empty_dev({T, C}, DType::kBF16), rstd = empty_dev({T}, DType::kF32);
  rms_norm_fwd(xd, wd, 1e-5, yd, rstd, stream_);
  expect_close(to_host_f32(yd, stream_), y_ref, kBf16Eps, "y");
  expect_close(to_host(rstd, stream_), rstd_ref, 1e-5, "rstd");
  for (DType dw_type : {DType::kF32, DType::kBF16}) {
    Tensor dxd = empty_dev({T, C}, DType::kBF16);
    Tensor dwd = to_device_as(dw_init, dw_type, stream_);
    rms_norm_bwd(dyd, xd, wd, rstd, dxd, dwd, stream_);
    expect_close(to_host_f32(dxd, stream_), dx_ref, kBf16Eps, "dx");
    expect_close(to_host_f32(dwd, stream_), dw_ref, dw_type == DType::kF32 ? 1e-5 : kBf16Eps, "dweight");
  }
  // Fused residual: dx = rms_norm_bwd's dx + residual, in one rounding.
  Tensor residual = random_bf16_values({T, C}, rng_);
  Tensor dx_add_ref = dx_ref.clone();
  for (int64_t i = 0; i < dx_add_ref.numel(); ++i) {
    dx_add_ref.data<float>()[i] += residual.data<float>()[i];
  }
  Tensor dxd = empty_dev({T, C}, DType::kBF16), dwd = to_device_as(dw_init, DType::kF32, stream_);
  rms_norm_bwd_add(dyd, xd, wd, rstd, dev_bf16(residual, stream_), dxd, dwd, stream_);
  expect_close(to_host_f32(dxd, stream_), dx_add_ref, kBf16Eps, "dx + residual");
  expect_close(to_host(dwd, stream_), dw_ref, 1e-5, "dweight (fused residual)");
  // In place (y aliases x).
  rms_norm_fwd(xd, wd, 1e-5, xd, rstd, stream_);
  expect_close(to_host_f32(xd, stream_), y_ref, kBf16Eps, "y in place");
}
INSTANTIATE_TEST_SUITE_P(VectorAndScalar, RmsNormTest,
                         ::testing::Values(std::pair{37, 1000}, std::pair{37, 1003},
                                           std::pair{37, 4096}, std::pair{2000, 512},
                                           std::pair{45, 8200}));

TEST_F(CudaTest, RopeMatchesCpuWithRestartingPositions) {
  for (int D : {64, 6}) {
    Tensor cu = Tensor::empty({5}, DType::kI32);
    std::vector<int32_t> offsets = {0, 5, 5, 130, 300};  // includes an empty sequence
    for (int i = 0; i < 5; ++i) cu.data<int32_t>()[i] = offsets[size_t(i)];
    const int T = 300, H = 3;
    Tensor x = random_bf16_values({T, H, D}, rng_);
    Tensor y_ref = Tensor::empty({T, H, D}, DType::kF32), dx_ref = y_ref.clone();
    cpu::rope_fwd(x, cu, 10000.0, y_ref);
    cpu::rope_bwd(x, cu, 10000.0, dx_ref);
    Tensor cud = to_device(cu, stream_), xd = dev_bf16(x, stream_);
    Tensor yd = empty_dev({T, H, D}, DType::kBF16);
    rope_fwd(xd, cud, 10000.0, yd, stream_);
    expect_close(to_host_f32(yd, stream_), y_ref, kBf16Eps, "rope y");
    rope_bwd(xd, cud, 10000.0, xd, stream_);  // in place
    expect_close(to_host_f32(xd, stream_), dx_ref, kBf16Eps, "rope dx");
  }
}

TEST_F(CudaTest, RopeAtExplicitPositionsMatchesCpu) {
  const int T = 257, H = 2, D = 64;
  Tensor pos = Tensor::empty({T}, DType::kI32);
  for (int t = 0; t < T; ++t) pos.data<int32_t>()[t] = (t * 977) % 30011;  // chunks mid-sequence
  Tensor x = random_bf16_values({T, H, D}, rng_);
  Tensor y_ref = Tensor::empty({T, H, D}, DType::kF32), dx_ref = y_ref.clone();
  cpu::rope_positions_fwd(x, pos, 10000.0, y_ref);
  cpu::rope_positions_bwd(x, pos, 10000.0, dx_ref);
  Tensor posd = to_device(pos, stream_), xd = dev_bf16(x, stream_);
  Tensor yd = empty_dev({T, H, D}, DType::kBF16);
  rope_positions_fwd(xd, posd, 10000.0, yd, stream_);
  expect_close(to_host_f32(yd, stream_), y_ref, 2 * kBf16Eps, "rope positions y");
  rope_positions_bwd(xd, posd, 10000.0, xd, stream_);
  expect_close(to_host_f32(xd, stream_), dx_ref, 2 * kBf16Eps, "rope positions dx");
}

// The fused q/k/v projection's split (q, k rotated, v copied) and merge against the CPU twin,
// with GQA widths, at restarting positions (D = 64: 2 pairs per thread; D = 6: 1) and at
// explicit positions.
TEST_F(CudaTest, QkvSplitAndMergeMatchCpu) {
  for (int D : {64, 6}) {
    for (bool explicit_positions : {false, true}) {
      const int T = 300, H = 4, Hkv = 2, W = (H + 2 * Hkv) * D;
      Tensor cu = Tensor::empty({5}, DType::kI32);
      std::vector<int32_t> offsets = {0, 5, 5, 130, 300};
      for (int i = 0; i < 5; ++i) cu.data<int32_t>()[i] = offsets[size_t(i)];
      Tensor pos;
      if (explicit_positions) {
        pos = Tensor::empty({T}, DType::kI32);
        for (int t = 0; t < T; ++t) pos.data<int32_t>()[t] = (t * 977) % 30011;
      }
      Tensor qkv = random_bf16_values({T, W}, rng_);
      Tensor q_ref = Tensor::empty({T, H, D}, DType::kF32);
      Tensor k_ref = Tensor::empty({T, Hkv, D}, DType::kF32), v_ref = k_ref.clone();
      cpu::qkv_split_rope(qkv, cu, pos, 10000.0, q_ref, k_ref, v_ref);
      Tensor dq = random_bf16_values({T, H, D}, rng_), dk = random_bf16_values({T, Hkv, D}, rng_);
      Tensor dv = random_bf16_values({T, Hkv, D}, rng_);
      Tensor dqkv_ref = Tensor::empty({T, W}, DType::kF32);
      cpu::qkv_merge_rope_bwd(dq, dk, dv, cu, pos, 10000.0, dqkv_ref);

      Tensor cud = to_device(cu, stream_);
      Tensor posd = pos.defined() ? to_device(pos, stream_) : Tensor();
      Tensor qd = empty_dev({T, H, D}, DType::kBF16), kd = empty_dev({T, Hkv, D}, DType::kBF16);
      Tensor vd = empty_dev({T, Hkv, D}, DType::kBF16);
      qkv_split_rope(dev_bf16(qkv, stream_), cud, posd, 10000.0, qd, kd, vd, stream_);
      const double tol = 2 * kBf16Eps;
      expect_close(to_host_f32(qd, stream_), q_ref, tol, "split q");
      expect_close(to_host_f32(kd, stream_), k_ref, tol, "split k");
      expect_close(to_host_f32(vd, stream_), v_ref, 0.0, "split v (a copy)");
      Tensor dqkv = empty_dev({T, W}, DType::kBF16);
      qkv_merge_rope_bwd(dev_bf16(dq, stream_), dev_bf16(dk, stream_), dev_bf16(dv, stream_), cud,
                         posd, 10000.0, dqkv, stream_);
      expect_close(to_host_f32(dqkv, stream_), dqkv_ref, tol, "merge dqkv");
    }
  }
}

TEST_F(CudaTest, BlockCopyMatchesCpu) {
  Tensor src = random_bf16_values({37, 19}, rng_);  // values exact in f32
  Tensor dst_init = random_bf16_values({41, 23}, rng_);
  const cpu::Block2d block{3, 2, 5, 4, 30, 15};
  for (cpu::BlockCopy mode : {cpu::BlockCopy::kAssign, cpu::BlockCopy::kAccumulate}) {
    Tensor ref = dst_init.clone();
    cpu::copy_block(src, ref, block, mode);
    Tensor dd = to_device(dst_init, stream_);
    copy_block(to_device(src, stream_), dd, block, mode, stream_);
    expect_close(to_host(dd, stream_), ref, 0.0, "copy_block");
  }
}

TEST_F(CudaTest, RopeAtLargePositions) {
  const int T = 40000, H = 1, D = 128;
  Tensor cu = Tensor::empty({2}, DType::kI32);
  cu.data<int32_t>()[0] = 0;
  cu.data<int32_t>()[1] = T;
  Tensor x = random_bf16_values({T, H, D}, rng_);
  Tensor y_ref = Tensor::empty({T, H, D}, DType::kF32);
  cpu::rope_fwd(x, cu, 500000.0, y_ref);
  Tensor yd = empty_dev({T, H, D}, DType::kBF16);
  rope_fwd(dev_bf16(x, stream_), to_device(cu, stream_), 500000.0, yd, stream_);
  expect_close(to_host_f32(yd, stream_), y_ref, 2 * kBf16Eps, "rope y at p < 40000");
}

class SwigluTest : public CudaTest, public ::testing::WithParamInterface<int> {};

TEST_P(SwigluTest, ForwardAndBackwardMatchCpu) {
  const int T = 33, F = GetParam();
  Tensor gu = random_bf16_values({T, 2 * F}, rng_, -4, 4);
  Tensor dout = random_bf16_values({T, F}, rng_);
  Tensor out_ref = Tensor::empty({T, F}, DType::kF32), dgu_ref = Tensor::empty({T, 2 * F}, DType::kF32);
  cpu::swiglu_fwd(gu, out_ref);
  cpu::swiglu_bwd(dout, gu, dgu_ref);
  Tensor gud = dev_bf16(gu, stream_), doutd = dev_bf16(dout, stream_);
  Tensor outd = empty_dev({T, F}, DType::kBF16);
  swiglu_fwd(gud, outd, stream_);
  expect_close(to_host_f32(outd, stream_), out_ref, kBf16Eps, "swiglu out");
  swiglu_bwd(doutd, gud, gud, stream_);  // in place
  expect_close(to_host_f32(gud, stream_), dgu_ref, kBf16Eps, "swiglu dgate_up");
}
INSTANTIATE_TEST_SUITE_P(VectorAndScalar, SwigluTest, ::testing::Values(128, 13));

class EmbeddingTest : public CudaTest, public ::testing::WithParamInterface<int> {};

TEST_P(EmbeddingTest, GatherAndScatterAddMatchCpu) {
  const int V = 101, C = GetParam(), T = 77;
  Tensor table = random_bf16_values({V, C}, rng_);
  Tensor ids = Tensor::empty({T}, DType::kI32);
  for (int t = 0; t < T; ++t) ids.data<int32_t>()[t] = (t * 37) % 19;  // repeated ids
  ids.data<int32_t>()[T - 1] = V - 1;
  ids.data<int32_t>()[3] = cpu::kMaskedId;  // another vocabulary shard's token: zero row, no grad
  ids.data<int32_t>()[40] = cpu::kMaskedId;
  Tensor dout = random_bf16_values({T, C}, rng_);
  Tensor out_ref = Tensor::empty({T, C}, DType::kF32);
  cpu::embedding_fwd(ids, table, out_ref);
  Tensor dtable_init = random_bf16_values({V, C}, rng_);
  Tensor dtable_ref = dtable_init.clone();
  cpu::embedding_bwd(ids, dout, dtable_ref);
  Tensor idsd = to_device(ids, stream_), outd = empty_dev({T, C}, DType::kBF16);
  embedding_fwd(idsd, dev_bf16(table, stream_), outd, stream_);
  expect_close(to_host_f32(outd, stream_), out_ref, 0.0, "embedding out (exact copy)");
  Tensor dtd = to_device(dtable_init, stream_);
  embedding_bwd(idsd, dev_bf16(dout, stream_), dtd, stream_);
  expect_close(to_host(dtd, stream_), dtable_ref, 1e-6, "embedding dtable");
}
INSTANTIATE_TEST_SUITE_P(VectorAndScalar, EmbeddingTest, ::testing::Values(64, 13));

// The scatter-add is deterministic: 16,384 positions over 50 ids (runs of ~330 rows, where an
// atomic order would show), twice from the same start, equal bit for bit and within fp32
// rounding of the CPU twin.
TEST_F(CudaTest, EmbeddingScatterAddIsBitwiseRepeatable) {
  const int V = 50304, C = 768, T = 16384;
  Tensor ids = Tensor::empty({T}, DType::kI32);
  for (int t = 0; t < T; ++t) ids.data<int32_t>()[t] = int32_t((uint64_t(t) * 2654435761u) % 50);
  ids.data<int32_t>()[7] = cpu::kMaskedId;
  Tensor dout = random_bf16_values({T, C}, rng_);
  Tensor dtable_ref = Tensor::zeros({V, C}, DType::kF32);
  cpu::embedding_bwd(ids, dout, dtable_ref);
  Tensor idsd = to_device(ids, stream_), doutd = dev_bf16(dout, stream_);
  Tensor first = zeros({V, C}, DType::kF32, stream_), second = zeros({V, C}, DType::kF32, stream_);
  embedding_bwd(idsd, doutd, first, stream_);
  embedding_bwd(idsd, doutd, second, stream_);
  Tensor a = to_host(first, stream_), b = to_host(second, stream_);
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << "two runs differ";
  expect_close(a, dtable_ref, 1e-5, "embedding dtable (long runs)");
}

class CrossEntropyTest : public CudaTest, public ::testing::WithParamInterface<int> {};

TEST_P(CrossEntropyTest, LossLseAndInPlaceGradMatchCpu) {
  const int T = 19, V = GetParam();
  const int64_t count = 1000;
  Tensor logits = random_bf16_values({T, V}, rng_, -8, 8);
  logits.data<float>()[3 * V + 7] = 40.f;  // a dominant logit
  Tensor targets = Tensor::empty({T}, DType::kI32);
  for (int t = 0; t < T; ++t) targets.data<int32_t>()[t] = (t * 7919) % V;
  targets.data<int32_t>()[3] = 7;
  targets.data<int32_t>()[5] = cpu::kIgnoreIndex;
  Tensor losses_ref = Tensor::empty({T}, DType::kF32), lse_ref = losses_ref.clone();
  Tensor loss_ref = Tensor::empty({1}, DType::kF32), dl_ref = Tensor::empty({T, V}, DType::kF32);
  cpu::cross_entropy_fwd(logits, targets, cpu::kIgnoreIndex, count, losses_ref, lse_ref, loss_ref);
  cpu::cross_entropy_bwd(logits, targets, lse_ref, cpu::kIgnoreIndex, count, dl_ref);

  Tensor ld = dev_bf16(logits, stream_), td = to_device(targets, stream_);
  Tensor losses = empty_dev({T}, DType::kF32), lse = empty_dev({T}, DType::kF32);
  Tensor loss = empty_dev({1}, DType::kF32);
  cross_entropy_fwd(ld, td, cpu::kIgnoreIndex, count, losses, lse, loss, stream_);
  testing::expect_near_each(to_host(lse, stream_), lse_ref, 1e-4, 1e-5, "lse");
  testing::expect_near_each(to_host(losses, stream_), losses_ref, 1e-4, 1e-5, "losses");
  testing::expect_near_each(to_host(loss, stream_), loss_ref, 1e-6, 1e-5, "loss");
  cross_entropy_bwd(ld, td, lse, cpu::kIgnoreIndex, count, ld, stream_);  // in place
  // dlogits are O(1/count): compare element-wise at bf16 resolution of that scale.
  testing::expect_near_each(to_host_f32(ld, stream_), dl_ref, 1e-9, 2 * kBf16Eps, "dlogits");

  // Both in one pass, in place (the training head's form).
  Tensor fused = dev_bf16(logits, stream_);
  Tensor losses2 = empty_dev({T}, DType::kF32), lse2 = empty_dev({T}, DType::kF32);
  Tensor loss2 = empty_dev({1}, DType::kF32);
  cross_entropy_fwd_bwd(fused, td, cpu::kIgnoreIndex, count, losses2, lse2, loss2, fused, stream_);
  testing::expect_near_each(to_host(lse2, stream_), lse_ref, 1e-4, 1e-5, "fused lse");
  testing::expect_near_each(to_host(losses2, stream_), losses_ref, 1e-4, 1e-5, "fused losses");
  testing::expect_near_each(to_host(loss2, stream_), loss_ref, 1e-6, 1e-5, "fused loss");
  testing::expect_near_each(to_host_f32(fused, stream_), dl_ref, 1e-9, 2 * kBf16Eps,
                            "fused dlogits");
}
INSTANTIATE_TEST_SUITE_P(VectorAndScalar, CrossEntropyTest, ::testing::Values(50304, 1001));

TEST_F(CudaTest, AdamWMatchesCpuWithBf16CopyAndBothGradTypes) {
  const int n = 10007;
  cpu::AdamWConfig config;
  config.lr = 1e-3;
  config.weight_decay = 0.1;
  for (DType grad_type : {DType::kF32, DType::kBF16}) {
    Tensor p = random_bf16_values({n}, rng_), m = Tensor::empty({n}, DType::kF32);
    Tensor v = m.clone();
    for (int i = 0; i < n; ++i) m.data<float>()[i] = v.data<float>()[i] = 0.f;
    Tensor pd = to_device(p, stream_), md = to_device(m, stream_), vd = to_device(v, stream_);
    Tensor copy = empty_dev({n}, DType::kBF16);
    for (int step = 1; step <= 3; ++step) {
      Tensor g = random_bf16_values({n}, rng_, -0.1, 0.1);
      cpu::adamw_step(p, g, m, v, config, step, 0.5);
      adamw_step(pd, to_device_as(g, grad_type, stream_), md, vd, config, step, 0.5, copy, stream_);
    }
    expect_close(to_host(pd, stream_), p, 1e-6, "param");
    expect_close(to_host(md, stream_), m, 1e-6, "exp_avg");
    expect_close(to_host(vd, stream_), v, 1e-6, "exp_avg_sq");
    expect_close(to_host_f32(copy, stream_), p, kBf16Eps, "param bf16 copy");
  }
}

TEST_F(CudaTest, GradNormSumsEveryTensorDeterministically) {
  std::vector<Tensor> host = {random_bf16_values({1000003}, rng_), random_bf16_values({7, 13}, rng_),
                              random_bf16_values({1}, rng_), Tensor::empty({0}, DType::kF32)};
  double want = 0;
  for (const Tensor& t : host) for (int64_t i = 0; i < t.numel(); ++i) want += double(t.data<float>()[i]) * t.data<float>()[i];
  std::vector<Tensor> dev = {to_device(host[0], stream_), to_device_as(host[1], DType::kBF16, stream_),
                             to_device(host[2], stream_), to_device(host[3], stream_)};
  Tensor out = empty_dev({1}, DType::kF32);
  grad_norm_sq(dev, out, stream_);
  float first = to_host(out, stream_).data<float>()[0];
  EXPECT_NEAR(first, want, 1e-5 * want);
  grad_norm_sq(dev, out, stream_);
  EXPECT_EQ(to_host(out, stream_).data<float>()[0], first);  // bitwise run to run
}

}  // namespace
}  // namespace hydraulis::cuda
