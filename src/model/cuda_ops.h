// The CUDA backend of the op table (model/ops.h): hydraulis::cuda kernels on one stream owned by
// the backend, tensors from the caching allocator, bf16 activations and compute weights, fp32
// statistics, gradients, master weights and AdamW moments. Built only with CUDA (HYD_WITH_CUDA).
// Tests: tests/model/cuda_model_test.cpp (device machine, labels gpu;model).
#pragma once

#include <memory>

#include "core/status.h"
#include "model/ops.h"

namespace hydraulis::model {

// A new backend on the current GPU. Errors: no GPU visible.
core::StatusOr<std::shared_ptr<const Ops>> make_cuda_ops();

}  // namespace hydraulis::model
