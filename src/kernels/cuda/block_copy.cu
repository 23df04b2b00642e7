// Block copy kernels: a 2-D memcpy for assignment, one thread per element for accumulation.
#include "kernels/cuda/block_copy.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

__global__ void add_block_kernel(const float* src, int64_t src_pitch, float* dst,
                                 int64_t dst_pitch, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * dst_pitch + c] += src[r * src_pitch + c];
  }
}

}  // namespace

void copy_block(const core::Tensor& src, core::Tensor& dst, const cpu::Block2d& b,
                cpu::BlockCopy mode, cudaStream_t stream) {
  detail::check_tensor(src, core::DType::kF32, {}, "copy_block src");
  detail::check_tensor(dst, core::DType::kF32, {}, "copy_block dst");
  const int64_t sw = cpu::block_width(src), dw = cpu::block_width(dst);
  HYD_CHECK(b.rows >= 0 && b.cols >= 0 && b.src_col + b.cols <= sw && b.dst_col + b.cols <= dw &&
                (b.src_row + b.rows) * sw <= src.numel() && (b.dst_row + b.rows) * dw <= dst.numel(),
            "copy_block: {}x{} block at ({}, {}) -> ({}, {}) outside {} / {}", b.rows, b.cols,
            b.src_row, b.src_col, b.dst_row, b.dst_col, src.describe(), dst.describe());
  if (b.rows == 0 || b.cols == 0) return;
  const float* s = detail::ptr<float>(src) + b.src_row * sw + b.src_col;
  float* d = detail::ptr<float>(dst) + b.dst_row * dw + b.dst_col;
  if (mode == cpu::BlockCopy::kAssign) {
    HYD_CUDA_CHECK(cudaMemcpy2DAsync(d, size_t(dw) * sizeof(float), s, size_t(sw) * sizeof(float),
                                     size_t(b.cols) * sizeof(float), size_t(b.rows),
                                     cudaMemcpyDeviceToDevice, stream));
    return;
  }
  const int64_t n = b.rows * b.cols;
  add_block_kernel<<<detail::blocks_for(n, 256, 132 * 16), 256, 0, stream>>>(s, sw, d, dw, b.rows,
                                                                            b.cols);
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
