// Small device kernels of the cuDNN attention path (declared in attention_cudnn_kernels.h): the
// per-step seq-len / ragged-offset arrays cuDNN reads and the stats <-> lse layout conversions.
// All O(B + H·T) work, a few microseconds per call. Tests: tests/kernels_cuda/attention_cudnn_test.cpp.
#include "kernels/cuda/attention_cudnn_kernels.h"

#include "kernels/cuda/attention_tiles.cuh"

namespace hydraulis::cuda::detail {

namespace {

__global__ void offsets_kernel(const int32_t* __restrict__ cu, int B, int Bb, int64_t q_row,
                               int64_t kv_row, int32_t* __restrict__ seq_len,
                               int32_t* __restrict__ q_off, int32_t* __restrict__ kv_off) {
  for (int b = threadIdx.x; b <= Bb; b += blockDim.x) {
    const int64_t start = cu[min(b, B)];
    if (b < Bb) seq_len[b] = b < B ? cu[b + 1] - cu[b] : 0;
    q_off[b] = int32_t(start * q_row);
    kv_off[b] = int32_t(start * kv_row);
  }
}

// Sequence of token t: the last b with cu[b] <= t (empty sequences share their start with the
// next one, so the search returns the non-empty one).
__device__ __forceinline__ int sequence_of(const int32_t* cu, int B, int t) {
  int lo = 0, hi = B - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (cu[mid] <= t) lo = mid; else hi = mid - 1;
  }
  return lo;
}

__global__ void stats_to_lse_kernel(const float* __restrict__ stats, const int32_t* __restrict__ cu,
                                    int B, int H, int Sb, int T, float* __restrict__ lse) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y;
  if (t >= T) return;
  const int b = sequence_of(cu, B, t);
  lse[int64_t(h) * T + t] = stats[(int64_t(b) * H + h) * Sb + (t - cu[b])];
}

__global__ void lse_to_stats_kernel(const float* __restrict__ lse, const int32_t* __restrict__ cu,
                                    int B, int H, int Sb, int T, float* __restrict__ stats) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x, bh = blockIdx.y;  // bh = b·H + h
  if (s >= Sb) return;
  const int b = bh / H, h = bh % H;
  float value = 0.f;
  if (b < B && s < cu[b + 1] - cu[b]) value = lse[int64_t(h) * T + cu[b] + s];
  stats[int64_t(bh) * Sb + s] = value;
}

}  // namespace

void check_cudnn_attention_fwd_args(const core::Tensor& q, const core::Tensor& k,
                                    const core::Tensor& v, const core::Tensor& cu_seqlens,
                                    const core::Tensor& out, const core::Tensor& lse) {
  const char* op = "cudnn_attention_fwd";
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "{}: q {} and k {} differ in tokens", op,
            q.describe(), k.describe());
  check_attention_args(q, k, v, cu_seqlens, cu_seqlens, op);
  check_tensor(out, core::DType::kBF16, q.shape(), op);
  check_tensor(lse, core::DType::kF32, {q.size(1), q.size(0)}, op);
  HYD_CHECK(aligned16(out.raw_data()), "{}: out must be 16-byte aligned", op);
}

void check_cudnn_attention_bwd_args(const core::Tensor& dout, const core::Tensor& q,
                                    const core::Tensor& k, const core::Tensor& v,
                                    const core::Tensor& out, const core::Tensor& lse,
                                    const core::Tensor& cu_seqlens, const core::Tensor& dq,
                                    const core::Tensor& dk, const core::Tensor& dv) {
  const char* op = "cudnn_attention_bwd";
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "{}: q {} and k {} differ in tokens", op,
            q.describe(), k.describe());
  check_attention_args(q, k, v, cu_seqlens, cu_seqlens, op);
  check_tensor(dout, core::DType::kBF16, q.shape(), op);
  check_tensor(out, core::DType::kBF16, q.shape(), op);
  check_tensor(lse, core::DType::kF32, {q.size(1), q.size(0)}, op);
  check_tensor(dq, core::DType::kBF16, q.shape(), op);
  check_tensor(dk, core::DType::kBF16, k.shape(), op);
  check_tensor(dv, core::DType::kBF16, v.shape(), op);
  HYD_CHECK(aligned16(dout.raw_data()) && aligned16(out.raw_data()) && aligned16(dq.raw_data()) &&
                aligned16(dk.raw_data()) && aligned16(dv.raw_data()),
            "{}: dout, out, dq, dk, dv must be 16-byte aligned", op);
}

void cudnn_attention_offsets(const int32_t* cu, int B, int Bb, int64_t q_row, int64_t kv_row,
                             int32_t* seq_len, int32_t* q_off, int32_t* kv_off,
                             cudaStream_t stream) {
  offsets_kernel<<<1, 256, 0, stream>>>(cu, B, Bb, q_row, kv_row, seq_len, q_off, kv_off);
  HYD_CUDA_LAUNCH_CHECK();
}

void cudnn_stats_to_lse(const float* stats, const int32_t* cu, int B, int H, int Sb, int T,
                        float* lse, cudaStream_t stream) {
  if (T == 0) return;
  stats_to_lse_kernel<<<dim3((T + 255) / 256, H), 256, 0, stream>>>(stats, cu, B, H, Sb, T, lse);
  HYD_CUDA_LAUNCH_CHECK();
}

void cudnn_lse_to_stats(const float* lse, const int32_t* cu, int B, int Bb, int H, int Sb, int T,
                        float* stats, cudaStream_t stream) {
  lse_to_stats_kernel<<<dim3((Sb + 255) / 256, Bb * H), 256, 0, stream>>>(lse, cu, B, H, Sb, T,
                                                                          stats);
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda::detail
