// Block copy on the host: one memcpy (or add loop) per row.
#include "kernels/cpu/block_copy.h"

#include <cstring>

#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

int64_t block_width(const core::Tensor& t) {
  return t.dim() >= 2 && t.size(0) > 0 ? t.numel() / t.size(0) : 1;
}

void copy_block(const core::Tensor& src, core::Tensor& dst, const Block2d& b, BlockCopy mode) {
  check_dtype(dst, src.dtype(), "copy_block dst");
  const int64_t sw = block_width(src), dw = block_width(dst);
  HYD_CHECK(b.rows >= 0 && b.cols >= 0 && b.src_col + b.cols <= sw && b.dst_col + b.cols <= dw &&
                (b.src_row + b.rows) * sw <= src.numel() && (b.dst_row + b.rows) * dw <= dst.numel(),
            "copy_block: {}x{} block at ({}, {}) -> ({}, {}) outside {} / {}", b.rows, b.cols,
            b.src_row, b.src_col, b.dst_row, b.dst_col, src.describe(), dst.describe());
  dispatch_floating(src.dtype(), "copy_block", [&]<typename T>(T) {
    const T* s = src.data<T>();
    T* d = dst.data<T>();
    for (int64_t r = 0; r < b.rows; ++r) {
      const T* from = s + (b.src_row + r) * sw + b.src_col;
      T* to = d + (b.dst_row + r) * dw + b.dst_col;
      if (mode == BlockCopy::kAssign) {
        std::memcpy(to, from, size_t(b.cols) * sizeof(T));
      } else {
        for (int64_t c = 0; c < b.cols; ++c) to[c] += from[c];
      }
    }
  });
}

}  // namespace hydraulis::cpu
