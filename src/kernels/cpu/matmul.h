// Linear layer without bias, nn.Linear layout: y = x · Wᵀ with W stored (out_features,
// in_features). GEMMs go through OpenBLAS (cblas_sgemm / cblas_dgemm). Gradient convention of all
// kernels: activation grads (dx) are overwritten, parameter grads (dw) are accumulated (+=) so
// micro-batches of different sizes sum into one gradient. Tests: tests/kernels/matmul_test.cpp.
#pragma once

#include "core/tensor.h"

namespace hydraulis::cpu {

// y = x · Wᵀ.  x (N, K), w (M, K), y (N, M); all f32 or all f64.
void matmul_fwd(const core::Tensor& x, const core::Tensor& w, core::Tensor& y);

// dx = dy · W (overwritten; skipped when dx is undefined), dw += dyᵀ · x.
// dy (N, M), x (N, K), w (M, K), dx (N, K), dw (M, K).
void matmul_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& w,
                core::Tensor& dx, core::Tensor& dw);

}  // namespace hydraulis::cpu
