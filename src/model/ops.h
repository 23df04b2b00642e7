// Ops: the backend seam of the model, optimizer and trainer. One interface with the op table of
// kernels/ (same names and argument order as cpu::* and cuda::*, the stream hidden inside) plus
// the memory plumbing the model needs (allocation on the device, uploads, host copies), so the
// layers are written once. cpu_ops() forwards to hydraulis::cpu (fp32/fp64, activations in the
// master dtype: bitwise the reference path); make_cuda_ops() (model/cuda_ops.h) to
// hydraulis::cuda on one stream (bf16 activations and compute weights, fp32 statistics,
// gradients, master weights and moments). Docs: docs/model.md, "Backends".
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/block_copy.h"
#include "model/config.h"

namespace hydraulis::model {

// One line of an op-time profile: the device time of every call of one op (and GEMM shape).
struct OpTime {
  std::string name;
  int64_t calls = 0;
  double ms = 0;
};

class Ops {
 public:
  virtual ~Ops() = default;

  virtual core::Device device() const = 0;
  virtual std::string description() const = 0;  // "cpu" or the GPU's name
  // dtype of activations and of the weights the kernels read, for `master` master weights.
  virtual core::DType compute_dtype(core::DType master) const = 0;
  // dtype of per-row statistics (rstd, lse, token losses).
  virtual core::DType statistic_dtype(core::DType master) const = 0;
  // OK when every op of the model supports the config on this backend (e.g. head dims).
  virtual core::Status check_supported(const LlamaConfig& config) const = 0;
  // Bytes the backend can still allocate (0 if unknown), and the high-water mark of its
  // allocations since reset_peak_memory() (0 where untracked).
  virtual int64_t available_memory() const = 0;
  virtual int64_t peak_memory() const = 0;
  virtual void reset_peak_memory() const = 0;
  // Returns the caching allocator's free blocks to the device (nothing where there is no cache),
  // so a later peak does not count blocks cut for other shapes.
  virtual void release_cached_memory() const {}
  // Dense bf16 tensor-core peak in FLOP/s for MFU (0: none, MFU is not reported).
  virtual double peak_flops() const = 0;
  // The board's energy counter in joules (cuda/energy.h: coarse, whole board) and the board's
  // name (its PCI address); NaN and empty where there is none, as on the CPU.
  virtual double board_joules() const { return std::numeric_limits<double>::quiet_NaN(); }
  virtual std::string board_id() const { return {}; }

  // Memory. Tensors live on device(); upload() of a host tensor returns it unchanged on the CPU.
  virtual core::Tensor empty(const core::Shape& shape, core::DType dtype) const = 0;
  virtual core::Tensor zeros(const core::Shape& shape, core::DType dtype) const = 0;
  virtual void fill_zero(core::Tensor& t) const = 0;
  virtual core::Tensor upload(const core::Tensor& host) const = 0;
  // Host tensor → device tensor of `dtype` (f32/f64/bf16), rounded to nearest even.
  virtual core::Tensor upload_as(const core::Tensor& host, core::DType dtype) const = 0;
  // Device tensor → host tensor (float dtypes come back as f32 from the GPU, the tensor itself
  // on the CPU). Waits for pending work.
  virtual core::Tensor to_host(const core::Tensor& t) const = 0;
  // dst = src converted elementwise (the bf16 compute copy of f32 master weights).
  virtual void convert(const core::Tensor& src, core::Tensor& dst) const = 0;
  virtual void synchronize() const = 0;

  // The op table (formulas and layouts: docs/kernels.md).
  virtual void embedding_fwd(const core::Tensor& ids, const core::Tensor& table,
                             core::Tensor& out) const = 0;
  virtual void embedding_bwd(const core::Tensor& ids, const core::Tensor& dout,
                             core::Tensor& dtable) const = 0;
  virtual void rms_norm_fwd(const core::Tensor& x, const core::Tensor& weight, double eps,
                            core::Tensor& y, core::Tensor& rstd) const = 0;
  virtual void rms_norm_bwd(const core::Tensor& dy, const core::Tensor& x,
                            const core::Tensor& weight, const core::Tensor& rstd, core::Tensor& dx,
                            core::Tensor& dweight) const = 0;
  virtual void matmul_fwd(const core::Tensor& x, const core::Tensor& w, core::Tensor& y) const = 0;
  virtual void matmul_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& w,
                          core::Tensor& dx, core::Tensor& dw) const = 0;
  // Fused forms of the decoder layer's residual and summed-gradient additions. The defaults run
  // the plain op and `add` (what the CPU backend does, bit for bit the unfused layer); the CUDA
  // backend folds the addition into the GEMM epilogue or the RMSNorm pass (one rounding).
  // y = x·wᵀ + residual (y must not alias residual).
  virtual void matmul_fwd_add(const core::Tensor& x, const core::Tensor& w,
                              const core::Tensor& residual, core::Tensor& y) const;
  // As matmul_bwd, but dx += dy·w.
  virtual void matmul_bwd_accumulate(const core::Tensor& dy, const core::Tensor& x,
                                     const core::Tensor& w, core::Tensor& dx,
                                     core::Tensor& dw) const;
  // As matmul_bwd, but dw = dyᵀ·x, overwriting it: the first write of a gradient whose zeroing
  // the store deferred (ParameterStore::defer_zero_grads). The default zeroes dw, then
  // accumulates (bit for bit the same: 0 + s = s); CUDA runs the GEMM with beta = 0.
  virtual void matmul_bwd_write_dw(const core::Tensor& dy, const core::Tensor& x,
                                   const core::Tensor& w, core::Tensor& dx,
                                   core::Tensor& dw) const;
  // As rms_norm_bwd, then dx += residual (dx must not alias residual).
  virtual void rms_norm_bwd_add(const core::Tensor& dy, const core::Tensor& x,
                                const core::Tensor& weight, const core::Tensor& rstd,
                                const core::Tensor& residual, core::Tensor& dx,
                                core::Tensor& dweight) const;
  virtual void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta,
                        core::Tensor& y) const = 0;
  virtual void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
                        core::Tensor& dx) const = 0;
  // The fused q/k/v projection's split and its backward (kernels/cpu/rope.h): qkv
  // (T, (H + 2·Hkv)·D) → q (T, H, D), k, v (T, Hkv, D), q and k rotated at the positions of
  // `positions` (T) where defined, else of cu_seqlens; and dq, dk, dv → dqkv.
  virtual void qkv_split_rope(const core::Tensor& qkv, const core::Tensor& cu_seqlens,
                              const core::Tensor& positions, double theta, core::Tensor& q,
                              core::Tensor& k, core::Tensor& v) const = 0;
  virtual void qkv_merge_rope_bwd(const core::Tensor& dq, const core::Tensor& dk,
                                  const core::Tensor& dv, const core::Tensor& cu_seqlens,
                                  const core::Tensor& positions, double theta,
                                  core::Tensor& dqkv) const = 0;
  virtual void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                             const core::Tensor& cu_seqlens, core::Tensor& out,
                             core::Tensor& lse) const = 0;
  virtual void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                             const core::Tensor& v, const core::Tensor& out,
                             const core::Tensor& lse, const core::Tensor& cu_seqlens,
                             core::Tensor& dq, core::Tensor& dk, core::Tensor& dv) const = 0;
  // Context parallelism: RoPE at explicit positions, and attention of query segments over
  // (gathered) key segments, causal aligned bottom-right (kernels/cpu/attention.h).
  virtual void rope_positions_fwd(const core::Tensor& x, const core::Tensor& positions,
                                  double theta, core::Tensor& y) const = 0;
  virtual void rope_positions_bwd(const core::Tensor& dy, const core::Tensor& positions,
                                  double theta, core::Tensor& dx) const = 0;
  virtual void attention_segments_fwd(const core::Tensor& q, const core::Tensor& k,
                                      const core::Tensor& v, const core::Tensor& cu_seqlens_q,
                                      const core::Tensor& cu_seqlens_k, core::Tensor& out,
                                      core::Tensor& lse) const = 0;
  virtual void attention_segments_bwd(const core::Tensor& dout, const core::Tensor& q,
                                      const core::Tensor& k, const core::Tensor& v,
                                      const core::Tensor& out, const core::Tensor& lse,
                                      const core::Tensor& cu_seqlens_q,
                                      const core::Tensor& cu_seqlens_k, core::Tensor& dq,
                                      core::Tensor& dk, core::Tensor& dv) const = 0;
  // False where attention_segments_* is not implemented (then cp > 1 is refused up front).
  virtual bool supports_attention_segments() const = 0;
  virtual void swiglu_fwd(const core::Tensor& gate_up, core::Tensor& out) const = 0;
  virtual void swiglu_bwd(const core::Tensor& dout, const core::Tensor& gate_up,
                          core::Tensor& dgate_up) const = 0;
  virtual void cross_entropy_fwd(const core::Tensor& logits, const core::Tensor& targets,
                                 int32_t ignore_index, int64_t global_token_count,
                                 core::Tensor& losses, core::Tensor& lse,
                                 core::Tensor& loss) const = 0;
  virtual void cross_entropy_bwd(const core::Tensor& logits, const core::Tensor& targets,
                                 const core::Tensor& lse, int32_t ignore_index,
                                 int64_t global_token_count, core::Tensor& dlogits) const = 0;
  // cross_entropy_fwd, then cross_entropy_bwd from its lse (dlogits may alias logits): the
  // training head's pair. The default runs the two ops; CUDA fuses them into one pass per row.
  virtual void cross_entropy_fwd_bwd(const core::Tensor& logits, const core::Tensor& targets,
                                     int32_t ignore_index, int64_t global_token_count,
                                     core::Tensor& losses, core::Tensor& lse, core::Tensor& loss,
                                     core::Tensor& dlogits) const;
  // dst's block (=|+=) src's block, both f32 2-D views (kernels/cpu/block_copy.h): the reshard
  // executor's pack and unpack.
  virtual void copy_block(const core::Tensor& src, core::Tensor& dst, const cpu::Block2d& block,
                          cpu::BlockCopy mode) const = 0;
  // The backend's CUDA stream (cudaStream_t) for communicators that must order their work with
  // the kernels; nullptr on the CPU.
  virtual void* native_stream() const = 0;
  // y = a + b (same shape; y may alias a or b): the residual additions.
  virtual void add(const core::Tensor& a, const core::Tensor& b, core::Tensor& y) const = 0;

  // Optimizer. compute: the bf16 copy to refresh in the same pass (undefined on the CPU).
  virtual void adamw_step(core::Tensor& param, const core::Tensor& grad, core::Tensor& exp_avg,
                          core::Tensor& exp_avg_sq, const cpu::AdamWConfig& config, int64_t step,
                          double grad_scale, core::Tensor& compute) const = 0;
  // Σ g² over every element of every tensor, in a fixed order.
  virtual double grad_norm_sq(std::span<const core::Tensor> grads) const = 0;

  // Which attention kernels serve attention_fwd/bwd: "cpu", "own" (our flash kernels,
  // deterministic) or "cudnn" (cuDNN's fused engine; dq accumulated with atomics, not bitwise
  // repeatable). The CUDA backend takes HYD_ATTENTION=auto|cudnn|own (auto: cuDNN when it loads).
  virtual std::string attention_impl() const { return "cpu"; }

  // Op-time profile (bench/train --op-profile): while on, every op's device time is recorded
  // (events around it on the stream); take_op_profile() waits for the stream, returns the sums
  // by op name in first-call order and clears them. Backends without it return nothing.
  virtual void set_op_profiling(bool) const {}
  virtual std::vector<OpTime> take_op_profile() const { return {}; }
};

// The CPU backend (stateless, shared).
const Ops& cpu_ops();

// True when this build has the CUDA backend (HYD_WITH_CUDA).
bool cuda_backend_built();

// Makes GPU `index` the current one of this thread (one GPU per rank: its local rank). Errors:
// no CUDA backend built, or no such GPU.
core::Status select_cuda_device(int index);

// The backend for `device`: the CPU one, or a new CUDA one (own stream) on the current GPU.
// Errors: CUDA not built, or no GPU visible.
core::StatusOr<std::shared_ptr<const Ops>> make_ops(core::Device device);

}  // namespace hydraulis::model
