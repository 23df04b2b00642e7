// The CPU backend of the op table: forwards every op to hydraulis::cpu (the fp32/fp64 reference
// kernels), activations in the master dtype, no copies (upload and to_host return the tensor).
// Tests: tests/model/ (the whole model through this backend).
#include <unistd.h>

#include <cstring>

#include "kernels/cpu/block_copy.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/ops.h"
#include "model/tensor_ops.h"

#ifdef HYD_WITH_CUDA
#include "model/cuda_ops.h"
#endif

namespace hydraulis::model {

void Ops::matmul_fwd_add(const core::Tensor& x, const core::Tensor& w,
                         const core::Tensor& residual, core::Tensor& y) const {
  matmul_fwd(x, w, y);
  add(y, residual, y);
}

void Ops::matmul_bwd_accumulate(const core::Tensor& dy, const core::Tensor& x,
                                const core::Tensor& w, core::Tensor& dx, core::Tensor& dw) const {
  core::Tensor partial = empty(dx.shape(), dx.dtype());
  matmul_bwd(dy, x, w, partial, dw);
  add(dx, partial, dx);
}

void Ops::matmul_bwd_write_dw(const core::Tensor& dy, const core::Tensor& x,
                              const core::Tensor& w, core::Tensor& dx, core::Tensor& dw) const {
  fill_zero(dw);
  matmul_bwd(dy, x, w, dx, dw);
}

void Ops::cross_entropy_fwd_bwd(const core::Tensor& logits, const core::Tensor& targets,
                                int32_t ignore_index, int64_t global_token_count,
                                core::Tensor& losses, core::Tensor& lse, core::Tensor& loss,
                                core::Tensor& dlogits) const {
  cross_entropy_fwd(logits, targets, ignore_index, global_token_count, losses, lse, loss);
  cross_entropy_bwd(logits, targets, lse, ignore_index, global_token_count, dlogits);
}

void Ops::rms_norm_bwd_add(const core::Tensor& dy, const core::Tensor& x,
                           const core::Tensor& weight, const core::Tensor& rstd,
                           const core::Tensor& residual, core::Tensor& dx,
                           core::Tensor& dweight) const {
  rms_norm_bwd(dy, x, weight, rstd, dx, dweight);
  add(dx, residual, dx);
}

namespace {

using core::Tensor;

class CpuOps final : public Ops {
 public:
  core::Device device() const override { return core::Device::kCpu; }
  std::string description() const override { return "cpu"; }
  core::DType compute_dtype(core::DType master) const override { return master; }
  core::DType statistic_dtype(core::DType master) const override { return master; }
  core::Status check_supported(const LlamaConfig&) const override { return core::Status::ok(); }
  int64_t available_memory() const override {
    long pages = sysconf(_SC_AVPHYS_PAGES);
    long page_size = sysconf(_SC_PAGESIZE);
    return pages > 0 && page_size > 0 ? int64_t(pages) * int64_t(page_size) : 0;
  }
  int64_t peak_memory() const override { return 0; }
  void reset_peak_memory() const override {}
  double peak_flops() const override { return 0; }

  Tensor empty(const core::Shape& shape, core::DType dtype) const override {
    return Tensor::empty(shape, dtype);
  }
  Tensor zeros(const core::Shape& shape, core::DType dtype) const override {
    return Tensor::zeros(shape, dtype);
  }
  void fill_zero(Tensor& t) const override { std::memset(t.raw_data(), 0, t.nbytes()); }
  Tensor upload(const Tensor& host) const override { return host; }
  Tensor upload_as(const Tensor& host, core::DType dtype) const override {
    HYD_CHECK(dtype == core::DType::kF32 || dtype == core::DType::kF64,
              "cpu upload_as: f32 or f64, got {}", core::dtype_name(dtype));
    Tensor out = Tensor::empty(host.shape(), dtype);
    for (int64_t i = 0; i < host.numel(); ++i) {
      if (dtype == core::DType::kF64) {
        out.data<double>()[i] = element(host, i);
      } else {
        out.data<float>()[i] = float(element(host, i));
      }
    }
    return out;
  }
  Tensor to_host(const Tensor& t) const override { return t; }
  void convert(const Tensor& src, Tensor& dst) const override {
    HYD_CHECK(src.numel() == dst.numel(), "convert: {} vs {} elements", src.numel(), dst.numel());
    for (int64_t i = 0; i < src.numel(); ++i) {
      if (dst.dtype() == core::DType::kF64) {
        dst.data<double>()[i] = element(src, i);
      } else {
        dst.data<float>()[i] = float(element(src, i));
      }
    }
  }
  void synchronize() const override {}

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) const override {
    cpu::embedding_fwd(ids, table, out);
  }
  void embedding_bwd(const Tensor& ids, const Tensor& dout, Tensor& dtable) const override {
    cpu::embedding_bwd(ids, dout, dtable);
  }
  void rms_norm_fwd(const Tensor& x, const Tensor& weight, double eps, Tensor& y,
                    Tensor& rstd) const override {
    cpu::rms_norm_fwd(x, weight, eps, y, rstd);
  }
  void rms_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                    Tensor& dx, Tensor& dweight) const override {
    cpu::rms_norm_bwd(dy, x, weight, rstd, dx, dweight);
  }
  void matmul_fwd(const Tensor& x, const Tensor& w, Tensor& y) const override {
    cpu::matmul_fwd(x, w, y);
  }
  void matmul_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx,
                  Tensor& dw) const override {
    cpu::matmul_bwd(dy, x, w, dx, dw);
  }
  void rope_fwd(const Tensor& x, const Tensor& cu, double theta, Tensor& y) const override {
    cpu::rope_fwd(x, cu, theta, y);
  }
  void rope_bwd(const Tensor& dy, const Tensor& cu, double theta, Tensor& dx) const override {
    cpu::rope_bwd(dy, cu, theta, dx);
  }
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu,
                     Tensor& out, Tensor& lse) const override {
    cpu::attention_fwd(q, k, v, cu, out, lse);
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& out, const Tensor& lse, const Tensor& cu, Tensor& dq, Tensor& dk,
                     Tensor& dv) const override {
    cpu::attention_bwd(dout, q, k, v, out, lse, cu, dq, dk, dv);
  }
  void qkv_split_rope(const Tensor& qkv, const Tensor& cu, const Tensor& positions, double theta,
                      Tensor& q, Tensor& k, Tensor& v) const override {
    cpu::qkv_split_rope(qkv, cu, positions, theta, q, k, v);
  }
  void qkv_merge_rope_bwd(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& cu,
                          const Tensor& positions, double theta, Tensor& dqkv) const override {
    cpu::qkv_merge_rope_bwd(dq, dk, dv, cu, positions, theta, dqkv);
  }
  void rope_positions_fwd(const Tensor& x, const Tensor& positions, double theta,
                          Tensor& y) const override {
    cpu::rope_positions_fwd(x, positions, theta, y);
  }
  void rope_positions_bwd(const Tensor& dy, const Tensor& positions, double theta,
                          Tensor& dx) const override {
    cpu::rope_positions_bwd(dy, positions, theta, dx);
  }
  void attention_segments_fwd(const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& cu_q, const Tensor& cu_k, Tensor& out,
                              Tensor& lse) const override {
    cpu::attention_segments_fwd(q, k, v, cu_q, cu_k, out, lse);
  }
  void attention_segments_bwd(const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& cu_q, const Tensor& cu_k, Tensor& dq, Tensor& dk,
                              Tensor& dv) const override {
    cpu::attention_segments_bwd(dout, q, k, v, out, lse, cu_q, cu_k, dq, dk, dv);
  }
  bool supports_attention_segments() const override { return true; }
  void copy_block(const Tensor& src, Tensor& dst, const cpu::Block2d& block,
                  cpu::BlockCopy mode) const override {
    cpu::copy_block(src, dst, block, mode);
  }
  void* native_stream() const override { return nullptr; }
  void swiglu_fwd(const Tensor& gate_up, Tensor& out) const override {
    cpu::swiglu_fwd(gate_up, out);
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) const override {
    cpu::swiglu_bwd(dout, gate_up, dgate_up);
  }
  void cross_entropy_fwd(const Tensor& logits, const Tensor& targets, int32_t ignore_index,
                         int64_t global_token_count, Tensor& losses, Tensor& lse,
                         Tensor& loss) const override {
    cpu::cross_entropy_fwd(logits, targets, ignore_index, global_token_count, losses, lse, loss);
  }
  void cross_entropy_bwd(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                         int32_t ignore_index, int64_t global_token_count,
                         Tensor& dlogits) const override {
    cpu::cross_entropy_bwd(logits, targets, lse, ignore_index, global_token_count, dlogits);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) const override { model::add(a, b, y); }

  void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                  const cpu::AdamWConfig& config, int64_t step, double grad_scale,
                  Tensor&) const override {
    cpu::adamw_step(param, grad, exp_avg, exp_avg_sq, config, step, grad_scale);
  }
  double grad_norm_sq(std::span<const Tensor> grads) const override {
    Tensor sum_sq = Tensor::empty({1}, core::DType::kF64);
    cpu::grad_norm_sq(grads, sum_sq);
    return element(sum_sq, 0);
  }
};

}  // namespace

const Ops& cpu_ops() {
  static const CpuOps ops;
  return ops;
}

bool cuda_backend_built() {
#ifdef HYD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifndef HYD_WITH_CUDA
core::Status select_cuda_device(int index) {
  return core::make_error(core::StatusCode::kUnimplemented,
                          "GPU {} requested but this build has no CUDA backend: rebuild with CUDA "
                          "or use --device cpu",
                          index);
}
#endif

core::StatusOr<std::shared_ptr<const Ops>> make_ops(core::Device device) {
  if (device == core::Device::kCpu) {
    return std::shared_ptr<const Ops>(&cpu_ops(), [](const Ops*) {});
  }
#ifdef HYD_WITH_CUDA
  return make_cuda_ops();
#else
  return core::make_error(core::StatusCode::kUnimplemented,
                          "this build has no CUDA backend (configured with HYD_CUDA=OFF or without "
                          "a CUDA toolkit): rebuild with CUDA or use --device cpu");
#endif
}

}  // namespace hydraulis::model
