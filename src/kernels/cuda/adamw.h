// AdamW on the device over one flat shard of fp32 master weights (PyTorch semantics, identical
// to cpu::adamw_step), optionally writing the bf16 working copy of the weights in the same pass;
// and the global gradient norm (deterministic fixed-order sum). Tests:
// tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <span>

#include "core/tensor.h"
#include "kernels/cpu/adamw.h"

namespace hydraulis::cuda {

using cpu::AdamWConfig;

// param, exp_avg, exp_avg_sq f32; grad f32 or bf16 (same shape). param_bf16: when defined
// (bf16, same shape) it receives the updated weights rounded to bf16 (the compute copy).
void adamw_step(core::Tensor& param, const core::Tensor& grad, core::Tensor& exp_avg,
                core::Tensor& exp_avg_sq, const AdamWConfig& config, int64_t step,
                double grad_scale, core::Tensor& param_bf16, cudaStream_t stream);

// out (1) f32 on the device = Σ g² over every element of every tensor (f32 or bf16), squares
// summed per block in fp32 and across blocks and tensors in double, in a fixed order.
void grad_norm_sq(std::span<const core::Tensor> grads, core::Tensor& out, cudaStream_t stream);

using cpu::grad_clip_factor;

}  // namespace hydraulis::cuda
