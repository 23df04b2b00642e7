// Block copy on the device (twin of cpu::copy_block, kernels/cpu/block_copy.h): assign through
// cudaMemcpy2DAsync, accumulate through a kernel; f32 tensors on the device, stream-ordered.
// Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"
#include "kernels/cpu/block_copy.h"

namespace hydraulis::cuda {

void copy_block(const core::Tensor& src, core::Tensor& dst, const cpu::Block2d& block,
                cpu::BlockCopy mode, cudaStream_t stream);

}  // namespace hydraulis::cuda
