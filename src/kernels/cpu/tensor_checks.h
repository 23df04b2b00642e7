// Shape/dtype invariants shared by the CPU kernels and the fp32/fp64 dispatch helper.
// A failed check is a caller bug (HYD_CHECK aborts with the offending tensors described).
// cu_seqlens (int32, B + 1): sequence b owns tokens [cu[b], cu[b+1]) of the packed micro-batch.
#pragma once

#include <initializer_list>
#include <string_view>

#include "core/tensor.h"

namespace hydraulis::cpu {

// `tensor` is a defined CPU tensor with exactly `shape`.
void check_shape(const core::Tensor& tensor, const core::Shape& shape, std::string_view name);
// `tensor` is a defined CPU tensor of `dtype`.
void check_dtype(const core::Tensor& tensor, core::DType dtype, std::string_view name);
// Every tensor in `tensors` has `dtype` (the op's compute dtype).
void check_dtypes(core::DType dtype, std::string_view op,
                  std::initializer_list<const core::Tensor*> tensors);
// cu_seqlens is int32 (B + 1) with cu[0] = 0, non-decreasing, cu[B] = num_tokens.
void check_cu_seqlens(const core::Tensor& cu_seqlens, int64_t num_tokens);

// Calls fn(float{}) or fn(double{}) for the floating dtype of the reference kernels.
template <typename Fn>
void dispatch_floating(core::DType dtype, std::string_view op, Fn&& fn) {
  switch (dtype) {
    case core::DType::kF32:
      fn(float{});
      return;
    case core::DType::kF64:
      fn(double{});
      return;
    default:
      HYD_CHECK(false, "{}: the CPU kernels compute in f32 or f64, got {}", op,
                core::dtype_name(dtype));
  }
}

}  // namespace hydraulis::cpu
