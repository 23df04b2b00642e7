// Flash-attention kernels vs the CPU twin (fp32 on the same bf16-rounded inputs): packed varlen
// batches with empty, one-token, tile-straddling and multi-tile sequences, grouped-query heads,
// head dims 64 and 128, lengths that end inside and on the kernels' 16-row m-tiles and 64-row
// tiles; out, lse, dq, dk, dv.
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

}  // namespace
}  // namespace hydraulis::cuda
