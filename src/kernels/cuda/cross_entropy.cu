// Cross-entropy kernels: forward = per-row online log-sum-exp (each thread keeps a running max m
// and sum s of exp(x − m), merged across the block as (m, s) pairs), then a one-block fixed-order
// loss sum; backward = one streaming pass per row; fwd_bwd = both in one kernel per row (the
// gradient pass re-reads the row from L2). Twin: cpu/cross_entropy.cpp.
#include "kernels/cuda/cross_entropy.h"

#include <cfloat>

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;
constexpr int kThreads = 512;

__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;  // both empty
  s = s * __expf(m - mx) + s2 * __expf(m2 - mx);
  m = mx;
}

// The row's log-sum-exp, returned to every thread of the block (blockDim = kBlock).
template <bool kVec, int kBlock>
__device__ __forceinline__ float row_lse(const bf16* __restrict__ x, int V) {
  __shared__ float sm[32], ss[32];
  float m = -INFINITY, s = 0.f;
  if constexpr (kVec) {
    for (int c = threadIdx.x * 8; c < V; c += kBlock * 8) {
      float v[8];
      detail::load8(x + c, v);
      float mx = v[0];
#pragma unroll
      for (int i = 1; i < 8; ++i) mx = fmaxf(mx, v[i]);
      float part = 0.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) part += __expf(v[i] - mx);
      lse_merge(m, s, mx, part);
    }
  } else {
    for (int c = threadIdx.x; c < V; c += kBlock) lse_merge(m, s, __bfloat162float(x[c]), 1.f);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) { sm[warp] = m; ss[warp] = s; }
  __syncthreads();
  m = lane < kBlock / 32 ? sm[lane] : -INFINITY;
  s = lane < kBlock / 32 ? ss[lane] : 0.f;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  return m + logf(s);  // every warp reduced the same 32 partials in the same order
}

// Thread 0: the row's lse and token loss (0 for ignored targets and, tp > 1, targets on another
// shard: cpu::kTargetOnOtherShard = −1).
__device__ __forceinline__ void write_row_loss(const bf16* __restrict__ x, int target,
                                               int ignore_index, float row, int V,
                                               float* __restrict__ loss_out,
                                               float* __restrict__ lse_out) {
  if (threadIdx.x != 0) return;
  *lse_out = row;
  if (target == ignore_index || target == -1) {
    *loss_out = 0.f;
  } else {
    if (target < 0 || target >= V) __trap();  // caller bug: targets validated on the host
    *loss_out = row - __bfloat162float(x[target]);
  }
}

// dx = (softmax − onehot)·scale over the row; dx may alias x (each element read, then written).
template <bool kVec, int kBlock>
__device__ __forceinline__ void write_row_grad(const bf16* x, int target, float l, float scale,
                                               bf16* dx, int V) {
  if constexpr (kVec) {
    for (int c = threadIdx.x * 8; c < V; c += kBlock * 8) {
      float v[8];
      detail::load8(x + c, v);
#pragma unroll
      for (int i = 0; i < 8; ++i) v[i] = (__expf(v[i] - l) - (c + i == target ? 1.f : 0.f)) * scale;
      detail::store8(dx + c, v);
    }
  } else {
    for (int c = threadIdx.x; c < V; c += kBlock) {
      float p = __expf(__bfloat162float(x[c]) - l);
      dx[c] = __float2bfloat16_rn((p - (c == target ? 1.f : 0.f)) * scale);
    }
  }
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) cross_entropy_fwd_kernel(
    const bf16* __restrict__ logits, const int32_t* __restrict__ targets, int ignore_index,
    float* __restrict__ losses, float* __restrict__ lse, int V) {
  const int64_t row = blockIdx.x;
  const bf16* x = logits + row * V;  // (V)
  const float l = row_lse<kVec, kThreads>(x, V);
  write_row_loss(x, targets[row], ignore_index, l, V, losses + row, lse + row);
}

// loss[0] = Σ_t losses[t] / count in a fixed order (one block; per-thread strided sums in double).
__global__ void loss_sum_kernel(const float* __restrict__ losses, int T, double inv_count,
                                float* __restrict__ loss) {
  __shared__ double partial[1024];
  double acc = 0;
  for (int t = threadIdx.x; t < T; t += blockDim.x) acc += losses[t];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) partial[threadIdx.x] += partial[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = float(partial[0] * inv_count);
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) cross_entropy_bwd_kernel(
    const bf16* logits, const int32_t* __restrict__ targets, const float* __restrict__ lse,
    int ignore_index, float inv_count, bf16* dlogits, int V) {
  const int64_t row = blockIdx.x;
  const int target = targets[row];
  write_row_grad<kVec, kThreads>(logits + row * V, target, lse[row],
                                 target == ignore_index ? 0.f : inv_count, dlogits + row * V, V);
}

// Forward and backward in one pass per row: the lse pass, then the gradient pass re-reads the
// row from L2 (2 blocks of 1024 threads per SM keep ~264 rows, 26 MB at V = 50 304, in flight).
constexpr int kFusedThreads = 1024;
template <bool kVec>
__global__ void __launch_bounds__(kFusedThreads) cross_entropy_fwd_bwd_kernel(
    const bf16* logits, const int32_t* __restrict__ targets, int ignore_index, float inv_count,
    float* __restrict__ losses, float* __restrict__ lse, bf16* dlogits, int V) {
  const int64_t row = blockIdx.x;
  const bf16* x = logits + row * V;  // (V)
  const int target = targets[row];
  const float l = row_lse<kVec, kFusedThreads>(x, V);
  write_row_loss(x, target, ignore_index, l, V, losses + row, lse + row);
  __syncthreads();  // thread 0 read x[target] before anyone overwrites it (dlogits may alias)
  write_row_grad<kVec, kFusedThreads>(x, target, l, target == ignore_index ? 0.f : inv_count,
                                      dlogits + row * V, V);
}

void check_args(const core::Tensor& logits, const core::Tensor& targets, int64_t count,
                const char* op) {
  HYD_CHECK(logits.dim() == 2, "{}: logits must be (T, V), is {}", op, logits.describe());
  detail::check_tensor(logits, core::DType::kBF16, {}, op);
  detail::check_tensor(targets, core::DType::kI32, {logits.size(0)}, op);
  HYD_CHECK(count > 0, "{}: global_token_count = {} must be > 0", op, count);
}

}  // namespace

void cross_entropy_fwd(const core::Tensor& logits, const core::Tensor& targets,
                       int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                       core::Tensor& lse, core::Tensor& loss, cudaStream_t stream) {
  check_args(logits, targets, global_token_count, "cross_entropy_fwd");
  int T = int(logits.size(0)), V = int(logits.size(1));
  detail::check_tensor(losses, core::DType::kF32, {T}, "cross_entropy_fwd losses");
  detail::check_tensor(lse, core::DType::kF32, {T}, "cross_entropy_fwd lse");
  detail::check_tensor(loss, core::DType::kF32, {1}, "cross_entropy_fwd loss");
  if (T > 0) {
    bool vec = V % 8 == 0 && detail::aligned16(logits.raw_data());
    auto launch = [&](auto kernel) {
      kernel<<<T, kThreads, 0, stream>>>(detail::ptr<bf16>(logits), detail::ptr<int32_t>(targets),
                                         ignore_index, detail::ptr<float>(losses),
                                         detail::ptr<float>(lse), V);
    };
    if (vec) launch(cross_entropy_fwd_kernel<true>); else launch(cross_entropy_fwd_kernel<false>);
    HYD_CUDA_LAUNCH_CHECK();
  }
  loss_sum_kernel<<<1, 1024, 0, stream>>>(detail::ptr<float>(losses), T,
                                          1.0 / double(global_token_count), detail::ptr<float>(loss));
  HYD_CUDA_LAUNCH_CHECK();
}

void cross_entropy_bwd(const core::Tensor& logits, const core::Tensor& targets,
                       const core::Tensor& lse, int32_t ignore_index, int64_t global_token_count,
                       core::Tensor& dlogits, cudaStream_t stream) {
  check_args(logits, targets, global_token_count, "cross_entropy_bwd");
  int T = int(logits.size(0)), V = int(logits.size(1));
  detail::check_tensor(lse, core::DType::kF32, {T}, "cross_entropy_bwd lse");
  detail::check_tensor(dlogits, core::DType::kBF16, logits.shape(), "cross_entropy_bwd dlogits");
  if (T == 0) return;
  bool vec = V % 8 == 0 && detail::aligned16(logits.raw_data()) && detail::aligned16(dlogits.raw_data());
  auto launch = [&](auto kernel) {
    kernel<<<T, kThreads, 0, stream>>>(detail::ptr<bf16>(logits), detail::ptr<int32_t>(targets),
                                       detail::ptr<float>(lse), ignore_index,
                                       float(1.0 / double(global_token_count)),
                                       detail::ptr<bf16>(dlogits), V);
  };
  if (vec) launch(cross_entropy_bwd_kernel<true>); else launch(cross_entropy_bwd_kernel<false>);
  HYD_CUDA_LAUNCH_CHECK();
}

void cross_entropy_fwd_bwd(const core::Tensor& logits, const core::Tensor& targets,
                           int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                           core::Tensor& lse, core::Tensor& loss, core::Tensor& dlogits,
                           cudaStream_t stream) {
  check_args(logits, targets, global_token_count, "cross_entropy_fwd_bwd");
  int T = int(logits.size(0)), V = int(logits.size(1));
  detail::check_tensor(losses, core::DType::kF32, {T}, "cross_entropy_fwd_bwd losses");
  detail::check_tensor(lse, core::DType::kF32, {T}, "cross_entropy_fwd_bwd lse");
  detail::check_tensor(loss, core::DType::kF32, {1}, "cross_entropy_fwd_bwd loss");
  detail::check_tensor(dlogits, core::DType::kBF16, logits.shape(), "cross_entropy_fwd_bwd dlogits");
  if (T > 0) {
    bool vec = V % 8 == 0 && detail::aligned16(logits.raw_data()) &&
               detail::aligned16(dlogits.raw_data());
    auto launch = [&](auto kernel) {
      kernel<<<T, kFusedThreads, 0, stream>>>(
          detail::ptr<bf16>(logits), detail::ptr<int32_t>(targets), ignore_index,
          float(1.0 / double(global_token_count)), detail::ptr<float>(losses),
          detail::ptr<float>(lse), detail::ptr<bf16>(dlogits), V);
    };
    if (vec) launch(cross_entropy_fwd_bwd_kernel<true>); else launch(cross_entropy_fwd_bwd_kernel<false>);
    HYD_CUDA_LAUNCH_CHECK();
  }
  loss_sum_kernel<<<1, 1024, 0, stream>>>(detail::ptr<float>(losses), T,
                                          1.0 / double(global_token_count), detail::ptr<float>(loss));
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
