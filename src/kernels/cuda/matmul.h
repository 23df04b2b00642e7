// Linear layer on the device through cuBLASLt: bf16 operands, fp32 accumulation (CUBLAS_COMPUTE_32F),
// nn.Linear layout y = x·Wᵀ. The weight gradient accumulates straight into an f32 (or bf16) buffer
// through the GEMM's beta = 1 epilogue, so micro-batches sum without an extra kernel.
// Twin of cpu::matmul_*. Tests: tests/kernels_cuda/matmul_test.cpp; bench: bench/kernels/.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// x (N, K) bf16, w (M, K) bf16 -> y (N, M) bf16.
void matmul_fwd(const core::Tensor& x, const core::Tensor& w, core::Tensor& y, cudaStream_t stream);

// y (N, M) bf16 = x·Wᵀ + residual (N, M) bf16 in one GEMM (beta = 1 epilogue; y must not
// alias residual): the residual additions of a decoder layer.
void matmul_fwd_add(const core::Tensor& x, const core::Tensor& w, const core::Tensor& residual,
                    core::Tensor& y, cudaStream_t stream);

// What matmul_bwd does with dx: overwrite it, or add to it (the GEMM's beta = 1).
enum class InputGrad { kWrite, kAccumulate };

// What matmul_bwd does with dw: add to it (micro-batches accumulate), or overwrite it (the first
// writer of a step whose zeroing was deferred: the GEMM's beta = 0, no memset needed).
enum class WeightGrad { kAccumulate, kWrite };

// dx (N, K) bf16 = dy·W, or += with InputGrad::kAccumulate (skipped when dx is undefined);
// dw (M, K) f32 or bf16 += dyᵀ·x, or = with WeightGrad::kWrite (zeros when N = 0).
void matmul_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& w,
                core::Tensor& dx, core::Tensor& dw, cudaStream_t stream,
                InputGrad input_grad = InputGrad::kWrite,
                WeightGrad weight_grad = WeightGrad::kAccumulate);

}  // namespace hydraulis::cuda
