// Token embedding on the device: out[t] = table[ids[t]] (bf16), backward scatter-adds dout rows
// into an fp32 table gradient deterministically (the rows of one id summed in position order,
// then added once: the same bits every run; the rounding differs from the CPU twin's row-by-row
// adds). Twin of cpu::embedding_*. Tests: tests/kernels_cuda/elementwise_test.cpp.
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
