// Block copy: a rows × cols rectangle of one row-major 2-D view to another, assigned or added.
// The reshard executor (parallel/reshard_exec.h) packs the rectangles it sends into a buffer and
// unpacks what it receives with it. A tensor is viewed as (size(0), numel / size(0)), a 1-D one
// as (n, 1). Twin: cuda::copy_block. Tests: tests/kernels/block_copy_test.cpp,
// tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace hydraulis::cpu {

enum class BlockCopy { kAssign, kAccumulate };

struct Block2d {
  int64_t src_row = 0, src_col = 0, dst_row = 0, dst_col = 0, rows = 0, cols = 0;
};

// dst[dst_row + r, dst_col + c] (=|+=) src[src_row + r, src_col + c]; src and dst f32 (or f64),
// same dtype, not overlapping.
void copy_block(const core::Tensor& src, core::Tensor& dst, const Block2d& block, BlockCopy mode);

// The row width of the 2-D view of `t`.
int64_t block_width(const core::Tensor& t);

}  // namespace hydraulis::cpu
