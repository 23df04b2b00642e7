// RoPE kernel: one thread per (token, pair i < D/2) over all heads; the token's position comes
// from a binary search of cu_seqlens, the angle p·inv_freq_i in fp32 with accurate sincosf
// (positions reach 10^5, where the fast intrinsics drift). Twin: cpu/rope.cpp.
#include "kernels/cuda/rope.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;

// One thread per (token, pair i < D/2), looping over the H heads: the position (binary search of
// cu, or positions[t]), inv_freq and the accurate sincosf are computed once per (t, i) and
// applied to every head; the lanes of a warp take consecutive pairs, so each head's row is read
// and written coalesced. positions == nullptr: p = t − start of t's sequence; else positions[t].
__global__ void rope_kernel(const bf16* x, const int32_t* __restrict__ cu, int num_seqs,
                            const int32_t* __restrict__ positions, float log2_theta, float sign,
                            bf16* y, int T, int H, int D) {
  const int half = D / 2;
  const int64_t n = int64_t(T) * half;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(idx % half);
    const int t = int(idx / half);
    const int p = positions != nullptr ? positions[t] : t - cu[detail::sequence_of(cu, num_seqs, t)];
    // inv_freq_i = 1 / theta^(2i/D) = 2^(−log2(theta)·2i/D), as HF in fp32.
    const float inv_freq = 1.f / exp2f(log2_theta * float(2 * i) / float(D));
    float s, c;
    sincosf(float(p) * inv_freq, &s, &c);
    s *= sign;
    for (int h = 0; h < H; ++h) {
      const int64_t row = (int64_t(t) * H + h) * D;
      const float x1 = __bfloat162float(x[row + i]), x2 = __bfloat162float(x[row + i + half]);
      y[row + i] = __float2bfloat16_rn(x1 * c - x2 * s);
      y[row + i + half] = __float2bfloat16_rn(x2 * c + x1 * s);
    }
  }
}

// Exactly one of cu_seqlens and positions is defined.
void rope_run(const core::Tensor& in, const core::Tensor& cu_seqlens, const core::Tensor& positions,
              double theta, float sign, core::Tensor& out, cudaStream_t stream, const char* op) {
  using core::DType;
  HYD_CHECK(in.dim() == 3, "{}: input must be (T, H, D), is {}", op, in.describe());
  int T = int(in.size(0)), H = int(in.size(1)), D = int(in.size(2));
  HYD_CHECK(D % 2 == 0, "{}: head dim D = {} must be even", op, D);
  HYD_CHECK(theta > 0, "{}: theta = {} must be > 0", op, theta);
  detail::check_tensor(in, DType::kBF16, {}, op);
  detail::check_tensor(out, DType::kBF16, in.shape(), op);
  const int32_t* cu = nullptr;
  const int32_t* pos = nullptr;
  int num_seqs = 0;
  if (positions.defined()) {
    detail::check_tensor(positions, DType::kI32, {in.size(0)}, op);
    pos = detail::ptr<int32_t>(positions);
  } else {
    detail::check_tensor(cu_seqlens, DType::kI32, {}, op);
    HYD_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.numel() >= 2,
              "{}: cu_seqlens must be (B + 1), is {}", op, cu_seqlens.describe());
    cu = detail::ptr<int32_t>(cu_seqlens);
    num_seqs = int(cu_seqlens.numel() - 1);
  }
  int64_t n = int64_t(T) * (D / 2);
  if (n == 0 || H == 0) return;
  rope_kernel<<<detail::blocks_for(n, 256, 132 * 32), 256, 0, stream>>>(
      detail::ptr<bf16>(in), cu, num_seqs, pos, float(std::log2(theta)), sign,
      detail::ptr<bf16>(out), T, H, D);
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta, core::Tensor& y,
              cudaStream_t stream) {
  rope_run(x, cu_seqlens, core::Tensor(), theta, 1.f, y, stream, "rope_fwd");
}

void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& dx, cudaStream_t stream) {
  rope_run(dy, cu_seqlens, core::Tensor(), theta, -1.f, dx, stream, "rope_bwd");
}

void rope_positions_fwd(const core::Tensor& x, const core::Tensor& positions, double theta,
                        core::Tensor& y, cudaStream_t stream) {
  rope_run(x, core::Tensor(), positions, theta, 1.f, y, stream, "rope_positions_fwd");
}

void rope_positions_bwd(const core::Tensor& dy, const core::Tensor& positions, double theta,
                        core::Tensor& dx, cudaStream_t stream) {
  rope_run(dy, core::Tensor(), positions, theta, -1.f, dx, stream, "rope_positions_bwd");
}

}  // namespace hydraulis::cuda
