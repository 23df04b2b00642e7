// Token embedding on the device: out[t] = table[ids[t]] (bf16), backward scatter-adds dout rows
// into an fp32 table gradient with atomics (order of repeated ids is not fixed: sums agree to
// fp32 rounding, not bitwise). Twin of cpu::embedding_*. Tests: tests/kernels_cuda/elementwise_test.cpp.
#pragma once

#include <cuda_runtime.h>

#include "core/tensor.h"

namespace hydraulis::cuda {

// ids (T) i32 on the device (validate on the host first: cpu::embedding_check_ids),
// table (V, C) bf16, out (T, C) bf16. An id outside [0, V) traps the kernel.
void embedding_fwd(const core::Tensor& ids, const core::Tensor& table, core::Tensor& out,
                   cudaStream_t stream);
// dtable (V, C) f32 += scatter of dout (T, C) bf16 rows at ids.
void embedding_bwd(const core::Tensor& ids, const core::Tensor& dout, core::Tensor& dtable,
                   cudaStream_t stream);

}  // namespace hydraulis::cuda
