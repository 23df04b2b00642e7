// Elementwise addition on the device, the residual connections of the model: y = a + b with
// bf16 (fp32 sum, rounded once) or f32 storage. Twin of model::add (model/tensor_ops.h).
// Tests: tests/model/cuda_model_test.cpp (through the whole model).
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// a, b, y: same shape and dtype (bf16 or f32), on the device; y may alias a or b.
void add(const core::Tensor& a, const core::Tensor& b, core::Tensor& y, cudaStream_t stream);

}  // namespace hydraulis::cuda
