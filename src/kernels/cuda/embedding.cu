// Embedding kernels: gather (16-byte copies when C % 8 == 0) and a deterministic scatter-add into
// the fp32 gradient: the positions are stably sorted by id (CUB radix sort of (id, position)
// pairs), then one block per run of equal ids sums that run's rows in position order and adds the
// sum to the table row once, so no two threads ever add to one element (no atomics, the same bits
// every run). Twin: cpu/embedding.cpp.
#include "kernels/cuda/embedding.h"

#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;

template <int kWidth>
__global__ void embedding_fwd_kernel(const int32_t* __restrict__ ids, const bf16* __restrict__ table,
                                     bf16* __restrict__ out, int T, int V, int C) {
  int per_row = C / kWidth;
  int64_t n = int64_t(T) * per_row;
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = idx / per_row;
    int c = int(idx % per_row) * kWidth;
    int id = ids[t];
    if (id == -1) {  // cpu::kMaskedId: a row of another vocabulary shard, or padding
      if constexpr (kWidth == 8) {
        *reinterpret_cast<uint4*>(out + t * C + c) = make_uint4(0, 0, 0, 0);
      } else {
        out[t * C + c] = __float2bfloat16_rn(0.f);
      }
      continue;
    }
    if (id < 0 || id >= V) __trap();  // caller bug: ids are validated on the host
    if constexpr (kWidth == 8) {
      *reinterpret_cast<uint4*>(out + t * C + c) =
          *reinterpret_cast<const uint4*>(table + int64_t(id) * C + c);
    } else {
      out[t * C + c] = table[int64_t(id) * C + c];
    }
  }
}

__global__ void iota_kernel(int32_t* __restrict__ out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = i;
}

// Block b looks at sorted entry b; only the first entry of a run of equal ids works: its threads
// stride over the columns, each summing the run's rows (ascending positions) before one add.
__global__ void embedding_bwd_runs_kernel(const int32_t* __restrict__ sorted_ids,
                                          const int32_t* __restrict__ sorted_pos,
                                          const bf16* __restrict__ dout,
                                          float* __restrict__ dtable, int T, int V, int C) {
  const int b = blockIdx.x;
  const int id = sorted_ids[b];
  if (b > 0 && sorted_ids[b - 1] == id) return;  // not the run's first entry
  if (id == -1) return;                          // cpu::kMaskedId
  if (id < 0 || id >= V) __trap();               // caller bug: ids are validated on the host
  int end = b + 1;
  while (end < T && sorted_ids[end] == id) ++end;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.f;
    for (int j = b; j < end; ++j) acc += __bfloat162float(dout[int64_t(sorted_pos[j]) * C + c]);
    dtable[int64_t(id) * C + c] += acc;
  }
}

}  // namespace

void embedding_fwd(const core::Tensor& ids, const core::Tensor& table, core::Tensor& out,
                   cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(table.dim() == 2, "embedding_fwd: table must be (V, C), is {}", table.describe());
  int V = int(table.size(0)), C = int(table.size(1)), T = int(ids.numel());
  detail::check_tensor(ids, DType::kI32, {T}, "embedding_fwd ids");
  detail::check_tensor(table, DType::kBF16, {}, "embedding_fwd table");
  detail::check_tensor(out, DType::kBF16, {T, C}, "embedding_fwd out");
  if (int64_t(T) * C == 0) return;
  bool vec = C % 8 == 0 && detail::aligned16(table.raw_data()) && detail::aligned16(out.raw_data());
  int64_t work = int64_t(T) * C / (vec ? 8 : 1);
  int grid = detail::blocks_for(work, 256, 132 * 16);
  if (vec) {
    embedding_fwd_kernel<8><<<grid, 256, 0, stream>>>(detail::ptr<int32_t>(ids), detail::ptr<bf16>(table),
                                                      detail::ptr<bf16>(out), T, V, C);
  } else {
    embedding_fwd_kernel<1><<<grid, 256, 0, stream>>>(detail::ptr<int32_t>(ids), detail::ptr<bf16>(table),
                                                      detail::ptr<bf16>(out), T, V, C);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

void embedding_bwd(const core::Tensor& ids, const core::Tensor& dout, core::Tensor& dtable,
                   cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(dtable.dim() == 2, "embedding_bwd: dtable must be (V, C), is {}", dtable.describe());
  int V = int(dtable.size(0)), C = int(dtable.size(1)), T = int(ids.numel());
  detail::check_tensor(ids, DType::kI32, {T}, "embedding_bwd ids");
  detail::check_tensor(dout, DType::kBF16, {T, C}, "embedding_bwd dout");
  detail::check_tensor(dtable, DType::kF32, {}, "embedding_bwd dtable (accumulates in f32)");
  if (int64_t(T) * C == 0) return;
  // (id, position) pairs sorted by id, stably (LSD radix sort), into one scratch tensor.
  size_t sort_bytes = 0;
  HYD_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, static_cast<int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr),
                                                 static_cast<int32_t*>(nullptr), T, 0, 32, stream));
  const size_t pairs_bytes = (3 * size_t(T) * sizeof(int32_t) + 255) / 256 * 256;  // temp aligned
  core::Tensor scratch = core::Tensor::empty({int64_t(pairs_bytes + sort_bytes)}, DType::kU8,
                                             core::Device::kCuda);
  auto* pos = static_cast<int32_t*>(scratch.raw_data());  // (T) 0 .. T−1
  int32_t* sorted_ids = pos + T;                            // (T)
  int32_t* sorted_pos = sorted_ids + T;                     // (T)
  void* sort_temp = static_cast<char*>(scratch.raw_data()) + pairs_bytes;
  iota_kernel<<<detail::blocks_for(T, 256, 132 * 4), 256, 0, stream>>>(pos, T);
  HYD_CUDA_LAUNCH_CHECK();
  HYD_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, detail::ptr<int32_t>(ids),
                                                 sorted_ids, pos, sorted_pos, T, 0, 32, stream));
  embedding_bwd_runs_kernel<<<T, 256, 0, stream>>>(sorted_ids, sorted_pos,
                                                   detail::ptr<bf16>(dout),
                                                   detail::ptr<float>(dtable), T, V, C);
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
