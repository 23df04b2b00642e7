// RMSNorm as in LLaMA (Hugging Face LlamaRMSNorm): y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps)
// over the channel axis, per token. The forward saves rstd (T) for the backward.
// Tests: tests/kernels/rms_norm_test.cpp.
#pragma once

#include "core/tensor.h"

namespace hydraulis::cpu {

// x (T, C), weight (C), y (T, C) (may alias x), rstd (T); all the same float dtype.
void rms_norm_fwd(const core::Tensor& x, const core::Tensor& weight, double eps, core::Tensor& y,
                  core::Tensor& rstd);

// dx (T, C) overwritten; dweight (C) accumulated.
// dx = rstd·w⊙dy − x·rstd³/C · Σ_c(w⊙dy⊙x),  dweight += Σ_t dy⊙x·rstd.
void rms_norm_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                  const core::Tensor& rstd, core::Tensor& dx, core::Tensor& dweight);

}  // namespace hydraulis::cpu
