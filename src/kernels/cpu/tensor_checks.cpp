// Invariant checks shared by the CPU kernels.
#include "kernels/cpu/tensor_checks.h"

#include <cstdint>

namespace hydraulis::cpu {

void check_dtype(const core::Tensor& tensor, core::DType dtype, std::string_view name) {
  HYD_CHECK(tensor.defined(), "{} is undefined", name);
  HYD_CHECK(tensor.device() == core::Device::kCpu, "{} must be on cpu, is {}", name,
            tensor.describe());
  HYD_CHECK(tensor.dtype() == dtype, "{} must be {}, is {}", name, core::dtype_name(dtype),
            tensor.describe());
}

void check_shape(const core::Tensor& tensor, const core::Shape& shape, std::string_view name) {
  HYD_CHECK(tensor.defined(), "{} is undefined", name);
  HYD_CHECK(tensor.device() == core::Device::kCpu, "{} must be on cpu, is {}", name,
            tensor.describe());
  HYD_CHECK(tensor.shape() == shape, "{} must have shape {}, is {}", name,
            core::shape_string(shape), tensor.describe());
}

void check_dtypes(core::DType dtype, std::string_view op,
                  std::initializer_list<const core::Tensor*> tensors) {
  for (const core::Tensor* tensor : tensors) check_dtype(*tensor, dtype, op);
}

void check_cu_seqlens(const core::Tensor& cu_seqlens, int64_t num_tokens) {
  check_dtype(cu_seqlens, core::DType::kI32, "cu_seqlens");
  HYD_CHECK(cu_seqlens.dim() == 1 && cu_seqlens.numel() >= 1,
            "cu_seqlens must be 1-d with B + 1 >= 1 entries, is {}", cu_seqlens.describe());
  const int32_t* cu = cu_seqlens.data<int32_t>();
  int64_t num_seqs = cu_seqlens.numel() - 1;
  HYD_CHECK(cu[0] == 0, "cu_seqlens[0] must be 0, is {}", cu[0]);
  for (int64_t b = 0; b < num_seqs; ++b) {
    HYD_CHECK(cu[b] <= cu[b + 1], "cu_seqlens must be non-decreasing: cu[{}] = {} > cu[{}] = {}", b,
              cu[b], b + 1, cu[b + 1]);
  }
  HYD_CHECK(cu[num_seqs] == num_tokens, "cu_seqlens[{}] = {} but the micro-batch has {} tokens",
            num_seqs, cu[num_seqs], num_tokens);
}

}  // namespace hydraulis::cpu
