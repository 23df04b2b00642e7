// SwiGLU of the LLaMA MLP on the device: gate_up (T, 2F) = [gate | up] bf16 -> silu(gate)·up,
// fp32 math. Twin of cpu::swiglu_*. Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// gate_up (T, 2F) bf16, out (T, F) bf16.
void swiglu_fwd(const core::Tensor& gate_up, core::Tensor& out, cudaStream_t stream);
// dout (T, F), gate_up (T, 2F) -> dgate_up (T, 2F) (may alias gate_up); all bf16.
void swiglu_bwd(const core::Tensor& dout, const core::Tensor& gate_up, core::Tensor& dgate_up,
                cudaStream_t stream);

}  // namespace hydraulis::cuda
