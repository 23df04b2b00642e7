// RMSNorm kernels: one warp per token row (16-byte vector path when C % 8 == 0 and the pointers
// are aligned, scalar path otherwise); the weight gradient by column-parallel partial sums over
// 128-row chunks plus a fixed-order column reduction. Twin: cpu/rms_norm.cpp.
#include "kernels/cuda/rms_norm.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;
constexpr int kRowsPerBlock = 4;     // warps per block, one row each
constexpr int kChunkRows = 128;      // rows per dweight partial

// Visits the row's elements owned by this lane: fn(c, x-values...) through 8-wide or scalar loads.
template <bool kVec>
__global__ void rms_norm_fwd_kernel(const bf16* x, const bf16* __restrict__ w, float eps,
                                    bf16* y, float* __restrict__ rstd, int T, int C) {
  int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= T) return;
  const bf16* xr = x + int64_t(row) * C;  // (C)
  bf16* yr = y + int64_t(row) * C;        // (C)
  float ss = 0.f;
  if constexpr (kVec) {
    for (int c = lane * 8; c < C; c += 256) {
      float v[8];
      detail::load8(xr + c, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) ss += v[i] * v[i];
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      float v = __bfloat162float(xr[c]);
      ss += v * v;
    }
  }
  float r = rsqrtf(detail::warp_sum(ss) / float(C) + eps);
  if (lane == 0) rstd[row] = r;
  if constexpr (kVec) {
    for (int c = lane * 8; c < C; c += 256) {
      float v[8], wv[8];
      detail::load8(xr + c, v);
      detail::load8(w + c, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = v[i] * r * wv[i];
      detail::store8(yr + c, v);
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      yr[c] = __float2bfloat16_rn(__bfloat162float(xr[c]) * r * __bfloat162float(w[c]));
    }
  }
}

template <bool kVec>
__global__ void rms_norm_bwd_dx_kernel(const bf16* __restrict__ dy, const bf16* __restrict__ x,
                                       const bf16* __restrict__ w, const float* __restrict__ rstd,
                                       const bf16* __restrict__ residual, bf16* __restrict__ dx,
                                       int T, int C) {
  int row = blockIdx.x * kRowsPerBlock + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (row >= T) return;
  const bf16* dyr = dy + int64_t(row) * C;  // (C)
  const bf16* xr = x + int64_t(row) * C;    // (C)
  bf16* dxr = dx + int64_t(row) * C;        // (C)
  const bf16* rr = residual != nullptr ? residual + int64_t(row) * C : nullptr;  // (C) or none
  float dot = 0.f;  // Σ_c w·dy·x
  if constexpr (kVec) {
    for (int c = lane * 8; c < C; c += 256) {
      float a[8], b[8], wv[8];
      detail::load8(dyr + c, a);
      detail::load8(xr + c, b);
      detail::load8(w + c, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += wv[i] * a[i] * b[i];
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      dot += __bfloat162float(w[c]) * __bfloat162float(dyr[c]) * __bfloat162float(xr[c]);
    }
  }
  dot = detail::warp_sum(dot);
  float r = rstd[row];
  float k = r * r * r * dot / float(C);
  if constexpr (kVec) {
    for (int c = lane * 8; c < C; c += 256) {
      float a[8], b[8], wv[8], o[8];
      detail::load8(dyr + c, a);
      detail::load8(xr + c, b);
      detail::load8(w + c, wv);
#pragma unroll
      for (int i = 0; i < 8; ++i) o[i] = r * wv[i] * a[i] - b[i] * k;
      if (rr != nullptr) {
        float e[8];
        detail::load8(rr + c, e);
#pragma unroll
        for (int i = 0; i < 8; ++i) o[i] += e[i];
      }
      detail::store8(dxr + c, o);
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      float o = r * __bfloat162float(w[c]) * __bfloat162float(dyr[c]) -
                __bfloat162float(xr[c]) * k;
      if (rr != nullptr) o += __bfloat162float(rr[c]);
      dxr[c] = __float2bfloat16_rn(o);
    }
  }
}

// partial[chunk, c] = Σ_{t in chunk} dy[t, c]·x[t, c]·rstd[t].  grid (ceil(C/256), chunks).
__global__ void rms_norm_bwd_dw_partial_kernel(const bf16* __restrict__ dy,
                                               const bf16* __restrict__ x,
                                               const float* __restrict__ rstd,
                                               float* __restrict__ partial, int T, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int t0 = blockIdx.y * kChunkRows, t1 = min(T, t0 + kChunkRows);
  float acc = 0.f;
  for (int t = t0; t < t1; ++t) {
    int64_t i = int64_t(t) * C + c;
    acc += __bfloat162float(dy[i]) * __bfloat162float(x[i]) * rstd[t];
  }
  partial[int64_t(blockIdx.y) * C + c] = acc;
}

template <typename G>
__global__ void rms_norm_bwd_dw_reduce_kernel(const float* __restrict__ partial, int chunks,
                                              int C, G* __restrict__ dweight) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.f;
  for (int k = 0; k < chunks; ++k) acc += partial[int64_t(k) * C + c];
  if constexpr (std::is_same_v<G, float>) {
    dweight[c] += acc;
  } else {
    dweight[c] = __float2bfloat16_rn(__bfloat162float(dweight[c]) + acc);
  }
}

}  // namespace

void rms_norm_fwd(const core::Tensor& x, const core::Tensor& weight, double eps, core::Tensor& y,
                  core::Tensor& rstd, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(x.dim() == 2, "rms_norm_fwd: x must be (T, C), is {}", x.describe());
  int T = int(x.size(0)), C = int(x.size(1));
  detail::check_tensor(x, DType::kBF16, {}, "rms_norm_fwd x");
  detail::check_tensor(weight, DType::kBF16, {C}, "rms_norm_fwd weight");
  detail::check_tensor(y, DType::kBF16, x.shape(), "rms_norm_fwd y");
  detail::check_tensor(rstd, DType::kF32, {T}, "rms_norm_fwd rstd");
  if (T == 0) return;
  bool vec = C % 8 == 0 && detail::aligned16(x.raw_data()) && detail::aligned16(y.raw_data()) &&
             detail::aligned16(weight.raw_data());
  dim3 grid((T + kRowsPerBlock - 1) / kRowsPerBlock), block(32 * kRowsPerBlock);
  auto launch = [&](auto kernel) {
    kernel<<<grid, block, 0, stream>>>(detail::ptr<bf16>(x), detail::ptr<bf16>(weight), float(eps),
                                       detail::ptr<bf16>(y), detail::ptr<float>(rstd), T, C);
  };
  if (vec) launch(rms_norm_fwd_kernel<true>); else launch(rms_norm_fwd_kernel<false>);
  HYD_CUDA_LAUNCH_CHECK();
}

void rms_norm_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                  const core::Tensor& rstd, core::Tensor& dx, core::Tensor& dweight,
                  cudaStream_t stream) {
  rms_norm_bwd_add(dy, x, weight, rstd, core::Tensor(), dx, dweight, stream);
}

void rms_norm_bwd_add(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                      const core::Tensor& rstd, const core::Tensor& residual, core::Tensor& dx,
                      core::Tensor& dweight, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(x.dim() == 2, "rms_norm_bwd: x must be (T, C), is {}", x.describe());
  int T = int(x.size(0)), C = int(x.size(1));
  detail::check_tensor(dy, DType::kBF16, x.shape(), "rms_norm_bwd dy");
  detail::check_tensor(x, DType::kBF16, {}, "rms_norm_bwd x");
  detail::check_tensor(weight, DType::kBF16, {C}, "rms_norm_bwd weight");
  detail::check_tensor(rstd, DType::kF32, {T}, "rms_norm_bwd rstd");
  detail::check_tensor(dx, DType::kBF16, x.shape(), "rms_norm_bwd dx");
  const bool add = residual.defined();
  if (add) detail::check_tensor(residual, DType::kBF16, x.shape(), "rms_norm_bwd_add residual");
  HYD_CHECK(dweight.defined() && (dweight.dtype() == DType::kF32 || dweight.dtype() == DType::kBF16),
            "rms_norm_bwd: dweight must be f32 or bf16, is {}", dweight.describe());
  detail::check_tensor(dweight, dweight.dtype(), {C}, "rms_norm_bwd dweight");
  if (T == 0) return;
  bool vec = C % 8 == 0 && detail::aligned16(x.raw_data()) && detail::aligned16(dy.raw_data()) &&
             detail::aligned16(dx.raw_data()) && detail::aligned16(weight.raw_data()) &&
             (!add || detail::aligned16(residual.raw_data()));
  dim3 grid((T + kRowsPerBlock - 1) / kRowsPerBlock), block(32 * kRowsPerBlock);
  auto launch = [&](auto kernel) {
    kernel<<<grid, block, 0, stream>>>(detail::ptr<bf16>(dy), detail::ptr<bf16>(x),
                                       detail::ptr<bf16>(weight), detail::ptr<float>(rstd),
                                       add ? detail::ptr<bf16>(residual) : nullptr,
                                       detail::ptr<bf16>(dx), T, C);
  };
  if (vec) launch(rms_norm_bwd_dx_kernel<true>); else launch(rms_norm_bwd_dx_kernel<false>);
  HYD_CUDA_LAUNCH_CHECK();

  int chunks = (T + kChunkRows - 1) / kChunkRows;
  core::Tensor partial = core::Tensor::empty({chunks, C}, DType::kF32, core::Device::kCuda);
  dim3 pgrid((C + 255) / 256, chunks);
  rms_norm_bwd_dw_partial_kernel<<<pgrid, 256, 0, stream>>>(
      detail::ptr<bf16>(dy), detail::ptr<bf16>(x), detail::ptr<float>(rstd),
      detail::ptr<float>(partial), T, C);
  HYD_CUDA_LAUNCH_CHECK();
  if (dweight.dtype() == DType::kF32) {
    rms_norm_bwd_dw_reduce_kernel<<<(C + 255) / 256, 256, 0, stream>>>(
        detail::ptr<float>(partial), chunks, C, detail::ptr<float>(dweight));
  } else {
    rms_norm_bwd_dw_reduce_kernel<<<(C + 255) / 256, 256, 0, stream>>>(
        detail::ptr<float>(partial), chunks, C, detail::ptr<bf16>(dweight));
  }
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
