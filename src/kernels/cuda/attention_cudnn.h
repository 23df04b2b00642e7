// Variable-length causal attention through cuDNN 9's fused flash-attention engine (backend graph
// API: the SDPA forward / backward operation graphs built from matmul, pointwise, reduction and
// reshape nodes, packed THD tensors with ragged offsets, padding mask from seq-len tensors).
// Same layout, semantics and signatures as cuda::attention_fwd / attention_bwd (attention.h), so
// either can serve the model; a second implementation to measure ours against. Built only with
// HYD_WITH_CUDNN (cuDNN found at configure time); libcudnn is loaded at run time.
// Tests: tests/kernels_cuda/attention_cudnn_test.cpp; bench: bench/kernels/kernels_bench.cpp.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/tensor.h"

namespace hydraulis::cuda {

// True when libcudnn.so.9 loads, its version is >= 9.6 (ragged grouped-query backward) and the
// current device is sm_90; otherwise false with the reason in *why (when why is not null).
bool cudnn_attention_available(std::string* why = nullptr);

// q (T, H, D), k, v (T, Hkv, D) bf16; cu_seqlens (B + 1) i32 on the device;
// out (T, H, D) bf16, lse (H, T) f32 (natural log). Head dims 64 and 128.
// Plans are cached per (H, Hkv, D, B rounded up to a power of two, longest sequence rounded up to
// a power of two >= 64); padded sequences have length 0. With B > 1 the longest sequence is read
// on the host: one (B + 1)-int copy that synchronises `stream` (B == 1 needs none), made once
// per cu_seqlens tensor (the last one read is remembered, so the other calls of a step with the
// same offsets make none).
void cudnn_attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                         const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse,
                         cudaStream_t stream);

// dq (T, H, D), dk, dv (T, Hkv, D) bf16, overwritten. Same plan cache and host read as the
// forward. cuDNN accumulates dq in fp32 with atomics: not bitwise deterministic across runs.
void cudnn_attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                         const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                         const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                         core::Tensor& dv, cudaStream_t stream);

}  // namespace hydraulis::cuda
