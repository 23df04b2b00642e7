// RoPE kernels: one thread per (token, P consecutive pairs i < D/2) over all heads of up to three
// row-strided tensors (q and k rotated, v copied: the fused q/k/v projection's split and merge);
// the token's position comes from a binary search of cu_seqlens (or positions[t]), the angle
// p·inv_freq_i in fp32 with accurate sincosf (positions reach 10^5, where the fast intrinsics
// drift). Twin: cpu/rope.cpp.
#include "kernels/cuda/rope.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;

// One tensor of the pass: `heads` head rows of D elements per token, token t's first at
// in + t·in_stride (out + t·out_stride); rotated, or copied (v).
struct RopePart {
  const bf16* in = nullptr;
  bf16* out = nullptr;
  int64_t in_stride = 0, out_stride = 0;
  int heads = 0;
  bool rotate = false;
};
struct RopeParts {
  RopePart part[3];
};

// Loads / stores P consecutive bf16 (P = 2: one 4-byte access; the caller keeps them aligned).
template <int P>
__device__ __forceinline__ void load_p(const bf16* p, float (&v)[P]) {
  if constexpr (P == 2) {
    const __nv_bfloat162 x = *reinterpret_cast<const __nv_bfloat162*>(p);
    v[0] = __low2float(x);
    v[1] = __high2float(x);
  } else {
    v[0] = __bfloat162float(p[0]);
  }
}
template <int P>
__device__ __forceinline__ void store_p(bf16* p, const float (&v)[P]) {
  if constexpr (P == 2) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v[0], v[1]);
  } else {
    p[0] = __float2bfloat16_rn(v[0]);
  }
}

// The lanes of a warp take consecutive pair groups, so each head's row is read and written
// coalesced; the position, inv_freq and sincosf are computed once per (t, i) for every head.
// positions == nullptr: p = t − start of t's sequence; else positions[t].
template <int P>
__global__ void rope_kernel(RopeParts parts, const int32_t* __restrict__ cu, int num_seqs,
                            const int32_t* __restrict__ positions, float log2_theta, float sign,
                            int T, int D) {
  const int half = D / 2, groups = half / P;
  const int64_t n = int64_t(T) * groups;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(idx % groups) * P;
    const int t = int(idx / groups);
    const int p = positions != nullptr ? positions[t] : t - cu[detail::sequence_of(cu, num_seqs, t)];
    float c[P], s[P];
#pragma unroll
    for (int j = 0; j < P; ++j) {
      // inv_freq_i = 1 / theta^(2i/D) = 2^(−log2(theta)·2i/D), as HF in fp32.
      const float inv_freq = 1.f / exp2f(log2_theta * float(2 * (i + j)) / float(D));
      sincosf(float(p) * inv_freq, &s[j], &c[j]);
      s[j] *= sign;
    }
#pragma unroll
    for (int w = 0; w < 3; ++w) {
      const RopePart& part = parts.part[w];
      const bf16* in = part.in + t * part.in_stride;
      bf16* out = part.out + t * part.out_stride;
      for (int h = 0; h < part.heads; ++h) {
        float x1[P], x2[P];
        load_p<P>(in + h * D + i, x1);
        load_p<P>(in + h * D + i + half, x2);
        if (part.rotate) {
          float y1[P], y2[P];
#pragma unroll
          for (int j = 0; j < P; ++j) {
            y1[j] = x1[j] * c[j] - x2[j] * s[j];
            y2[j] = x2[j] * c[j] + x1[j] * s[j];
          }
          store_p<P>(out + h * D + i, y1);
          store_p<P>(out + h * D + i + half, y2);
        } else {
          store_p<P>(out + h * D + i, x1);
          store_p<P>(out + h * D + i + half, x2);
        }
      }
    }
  }
}

// Positions: exactly one of cu_seqlens and positions is defined (checked here).
struct PositionArgs {
  const int32_t* cu = nullptr;
  const int32_t* pos = nullptr;
  int num_seqs = 0;
};
PositionArgs position_args(const core::Tensor& cu_seqlens, const core::Tensor& positions, int64_t T,
                           const char* op) {
  using core::DType;
  PositionArgs a;
  if (positions.defined()) {
    detail::check_tensor(positions, DType::kI32, {T}, op);
    a.pos = detail::ptr<int32_t>(positions);
  } else {
    detail::check_tensor(cu_seqlens, DType::kI32, {}, op);
    HYD_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.numel() >= 2,
              "{}: cu_seqlens must be (B + 1), is {}", op, cu_seqlens.describe());
    a.cu = detail::ptr<int32_t>(cu_seqlens);
    a.num_seqs = int(cu_seqlens.numel() - 1);
  }
  return a;
}

void launch(const RopeParts& parts, const PositionArgs& pa, double theta, float sign, int T, int D,
            const char* op, cudaStream_t stream) {
  HYD_CHECK(D % 2 == 0, "{}: head dim D = {} must be even", op, D);
  HYD_CHECK(theta > 0, "{}: theta = {} must be > 0", op, theta);
  // Two pairs per thread (4-byte accesses) where every row offset and half-row offset is even.
  bool pairs2 = D % 4 == 0;
  for (const RopePart& p : parts.part) {
    pairs2 = pairs2 && p.in_stride % 2 == 0 && p.out_stride % 2 == 0 &&
             (reinterpret_cast<uintptr_t>(p.in) & 3) == 0 &&
             (reinterpret_cast<uintptr_t>(p.out) & 3) == 0;
  }
  const int P = pairs2 ? 2 : 1;
  const int64_t n = int64_t(T) * (D / 2 / P);
  if (n == 0) return;
  const int blocks = detail::blocks_for(n, 256, 132 * 32);
  const float log2_theta = float(std::log2(theta));
  if (pairs2) {
    rope_kernel<2><<<blocks, 256, 0, stream>>>(parts, pa.cu, pa.num_seqs, pa.pos, log2_theta, sign,
                                               T, D);
  } else {
    rope_kernel<1><<<blocks, 256, 0, stream>>>(parts, pa.cu, pa.num_seqs, pa.pos, log2_theta, sign,
                                               T, D);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

// One (T, H, D) tensor rotated into another (which may alias it).
void rope_run(const core::Tensor& in, const core::Tensor& cu_seqlens, const core::Tensor& positions,
              double theta, float sign, core::Tensor& out, cudaStream_t stream, const char* op) {
  using core::DType;
  HYD_CHECK(in.dim() == 3, "{}: input must be (T, H, D), is {}", op, in.describe());
  const int T = int(in.size(0)), H = int(in.size(1)), D = int(in.size(2));
  detail::check_tensor(in, DType::kBF16, {}, op);
  detail::check_tensor(out, DType::kBF16, in.shape(), op);
  const PositionArgs pa = position_args(cu_seqlens, positions, T, op);
  RopeParts parts;
  parts.part[0] = {detail::ptr<bf16>(in), detail::ptr<bf16>(out), int64_t(H) * D, int64_t(H) * D,
                   H, true};
  launch(parts, pa, theta, sign, T, D, op, stream);
}

// q (T, H, D), k and v (T, Hkv, D) against the fused rows (T, (H + 2·Hkv)·D).
void check_qkv(const core::Tensor& fused, const core::Tensor& q, const core::Tensor& k,
               const core::Tensor& v, const char* op) {
  using core::DType;
  HYD_CHECK(q.dim() == 3 && k.dim() == 3 && fused.dim() == 2,
            "{}: q (T, H, D), k, v (T, Hkv, D) and qkv (T, W) expected, got {}, {}, {}", op,
            q.describe(), k.describe(), fused.describe());
  const int64_t T = q.size(0), H = q.size(1), D = q.size(2), Hkv = k.size(1);
  detail::check_tensor(q, DType::kBF16, {}, op);
  detail::check_tensor(k, DType::kBF16, {T, Hkv, D}, op);
  detail::check_tensor(v, DType::kBF16, {T, Hkv, D}, op);
  detail::check_tensor(fused, DType::kBF16, {T, (H + 2 * Hkv) * D}, op);
}

// The three parts between the fused rows and q, k, v; `to_fused` picks the direction.
RopeParts qkv_parts(const core::Tensor& fused, const core::Tensor& q, const core::Tensor& k,
                    const core::Tensor& v, bool to_fused) {
  const int64_t H = q.size(1), Hkv = k.size(1), D = q.size(2), W = (H + 2 * Hkv) * D;
  // The fused row pointer of each part, and each part's own tensor (const_cast: one of the two
  // sides is written, which the caller's signature says).
  bf16* f = const_cast<bf16*>(detail::ptr<bf16>(fused));
  const core::Tensor* own[3] = {&q, &k, &v};
  const int64_t col[3] = {0, H * D, (H + Hkv) * D};
  const int heads[3] = {int(H), int(Hkv), int(Hkv)};
  RopeParts parts;
  for (int w = 0; w < 3; ++w) {
    bf16* o = const_cast<bf16*>(detail::ptr<bf16>(*own[w]));
    const int64_t own_stride = heads[w] * D;
    parts.part[w] = to_fused ? RopePart{o, f + col[w], own_stride, W, heads[w], w < 2}
                             : RopePart{f + col[w], o, W, own_stride, heads[w], w < 2};
  }
  return parts;
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

void qkv_split_rope(const core::Tensor& qkv, const core::Tensor& cu_seqlens,
                    const core::Tensor& positions, double theta, core::Tensor& q, core::Tensor& k,
                    core::Tensor& v, cudaStream_t stream) {
  constexpr const char* op = "qkv_split_rope";
  check_qkv(qkv, q, k, v, op);
  const PositionArgs pa = position_args(cu_seqlens, positions, q.size(0), op);
  launch(qkv_parts(qkv, q, k, v, false), pa, theta, 1.f, int(q.size(0)), int(q.size(2)), op,
         stream);
}

void qkv_merge_rope_bwd(const core::Tensor& dq, const core::Tensor& dk, const core::Tensor& dv,
                        const core::Tensor& cu_seqlens, const core::Tensor& positions,
                        double theta, core::Tensor& dqkv, cudaStream_t stream) {
  constexpr const char* op = "qkv_merge_rope_bwd";
  check_qkv(dqkv, dq, dk, dv, op);
  const PositionArgs pa = position_args(cu_seqlens, positions, dq.size(0), op);
  launch(qkv_parts(dqkv, dq, dk, dv, true), pa, theta, -1.f, int(dq.size(0)), int(dq.size(2)), op,
         stream);
}

}  // namespace hydraulis::cuda
