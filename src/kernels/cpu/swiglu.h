// SwiGLU activation of the LLaMA MLP: out = silu(gate) ⊙ up, silu(g) = g·σ(g). The input is the
// fused gate/up projection (T, 2F): columns [0, F) are gate (HF gate_proj), [F, 2F) are up
// (HF up_proj), as Megatron's fused fc1 with chunk(2, dim=-1). Tests:
// tests/kernels/swiglu_test.cpp.
#pragma once

#include "core/tensor.h"

namespace hydraulis::cpu {

// gate_up (T, 2F), out (T, F).
void swiglu_fwd(const core::Tensor& gate_up, core::Tensor& out);

// dgate = dout·up·σ(g)·(1 + g·(1 − σ(g))), dup = dout·silu(g); written into dgate_up (T, 2F).
void swiglu_bwd(const core::Tensor& dout, const core::Tensor& gate_up, core::Tensor& dgate_up);

}  // namespace hydraulis::cpu
