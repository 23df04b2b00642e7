// RMSNorm kernels: forward one warp per token row (16-byte vector path when C % 8 == 0 and the
// pointers are aligned, scalar path otherwise). Backward: on the vector path with C ≤ 8192 one
// pass per 32-row chunk (dx and the weight gradient's partial sums, dy and x read once), else one
// warp per row for dx plus column-parallel partial sums over 128-row chunks; then a fixed-order
// column reduction of the partials (deterministic). Twin: cpu/rms_norm.cpp.
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

// The single-pass backward for C % 8 == 0, C ≤ 8192: one block per kFusedRows-row chunk, one
// thread per 8 columns. Per row the block reduces Σ w·dy·x, writes dx (+ residual) and adds
// dy·x·rstd to its columns' partial in registers; partial[chunk, c] at the end. dy and x are
// read once (the two-kernel path reads them twice).
constexpr int kFusedRows = 32;
__global__ void __launch_bounds__(1024) rms_norm_bwd_fused_kernel(const bf16* __restrict__ dy, const bf16* __restrict__ x,
                                          const bf16* __restrict__ w,
                                          const float* __restrict__ rstd,
                                          const bf16* __restrict__ residual, bf16* __restrict__ dx,
                                          float* __restrict__ partial, int T, int C) {
  __shared__ float scratch[32];
  const int c = threadIdx.x * 8;
  const bool active = c < C;
  float wv[8], acc[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) wv[i] = acc[i] = 0.f;
  if (active) detail::load8(w + c, wv);
  const int t0 = blockIdx.x * kFusedRows, t1 = min(T, t0 + kFusedRows);
  for (int t = t0; t < t1; ++t) {
    const int64_t row = int64_t(t) * C;
    float a[8], b[8], dot = 0.f;
    if (active) {
      detail::load8(dy + row + c, a);
      detail::load8(x + row + c, b);
#pragma unroll
      for (int i = 0; i < 8; ++i) dot += wv[i] * a[i] * b[i];
    }
    dot = detail::block_sum(dot, scratch);
    const float r = rstd[t];
    const float k = r * r * r * dot / float(C);
    if (active) {
      float o[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        o[i] = r * wv[i] * a[i] - b[i] * k;
        acc[i] += a[i] * b[i] * r;
      }
      if (residual != nullptr) {
        float e[8];
        detail::load8(residual + row + c, e);
#pragma unroll
        for (int i = 0; i < 8; ++i) o[i] += e[i];
      }
      detail::store8(dx + row + c, o);
    }
  }
  if (active) {
    float4* out = reinterpret_cast<float4*>(partial + int64_t(blockIdx.x) * C + c);
    out[0] = make_float4(acc[0], acc[1], acc[2], acc[3]);
    out[1] = make_float4(acc[4], acc[5], acc[6], acc[7]);
  }
}

// dweight[c] += Σ_k partial[k, c] in a fixed order: block (32 columns × 32 lanes of chunks),
// lane y sums chunks y, y + 32, ...; then lane 0 of each column adds the 32 sums in order.
template <typename G>
__global__ void rms_norm_bwd_dw_reduce_kernel(const float* __restrict__ partial, int chunks,
                                              int C, G* __restrict__ dweight) {
  __shared__ float sums[32][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (c < C) {
    for (int k = threadIdx.y; k < chunks; k += 32) acc += partial[int64_t(k) * C + c];
  }
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  float total = 0.f;
  for (int j = 0; j < 32; ++j) total += sums[j][threadIdx.x];
  if constexpr (std::is_same_v<G, float>) {
    dweight[c] += total;
  } else {
    dweight[c] = __float2bfloat16_rn(__bfloat162float(dweight[c]) + total);
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
  const bf16* res = add ? detail::ptr<bf16>(residual) : nullptr;
  core::Tensor partial;  // (chunks, C) f32
  int chunks = 0;
  if (vec && C <= 8 * 1024) {
    chunks = (T + kFusedRows - 1) / kFusedRows;
    partial = core::Tensor::empty({chunks, C}, DType::kF32, core::Device::kCuda);
    const int threads = (C / 8 + 31) / 32 * 32;
    rms_norm_bwd_fused_kernel<<<chunks, threads, 0, stream>>>(
        detail::ptr<bf16>(dy), detail::ptr<bf16>(x), detail::ptr<bf16>(weight),
        detail::ptr<float>(rstd), res, detail::ptr<bf16>(dx), detail::ptr<float>(partial), T, C);
    HYD_CUDA_LAUNCH_CHECK();
  } else {
    dim3 grid((T + kRowsPerBlock - 1) / kRowsPerBlock), block(32 * kRowsPerBlock);
    auto launch = [&](auto kernel) {
      kernel<<<grid, block, 0, stream>>>(detail::ptr<bf16>(dy), detail::ptr<bf16>(x),
                                         detail::ptr<bf16>(weight), detail::ptr<float>(rstd), res,
                                         detail::ptr<bf16>(dx), T, C);
    };
    if (vec) launch(rms_norm_bwd_dx_kernel<true>); else launch(rms_norm_bwd_dx_kernel<false>);
    HYD_CUDA_LAUNCH_CHECK();
    chunks = (T + kChunkRows - 1) / kChunkRows;
    partial = core::Tensor::empty({chunks, C}, DType::kF32, core::Device::kCuda);
    dim3 pgrid((C + 255) / 256, chunks);
    rms_norm_bwd_dw_partial_kernel<<<pgrid, 256, 0, stream>>>(
        detail::ptr<bf16>(dy), detail::ptr<bf16>(x), detail::ptr<float>(rstd),
        detail::ptr<float>(partial), T, C);
    HYD_CUDA_LAUNCH_CHECK();
  }
  const dim3 rgrid((C + 31) / 32), rblock(32, 32);
  if (dweight.dtype() == DType::kF32) {
    rms_norm_bwd_dw_reduce_kernel<<<rgrid, rblock, 0, stream>>>(
        detail::ptr<float>(partial), chunks, C, detail::ptr<float>(dweight));
  } else {
    rms_norm_bwd_dw_reduce_kernel<<<rgrid, rblock, 0, stream>>>(
        detail::ptr<float>(partial), chunks, C, detail::ptr<bf16>(dweight));
  }
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
