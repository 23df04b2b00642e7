// CUDA backend of the op table: every op forwards to hydraulis::cuda on the backend's stream;
// host copies synchronise that stream. Tests: tests/model/cuda_model_test.cpp.
#include "model/cuda_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/adamw.h"
#include "kernels/cuda/add.h"
#include "kernels/cuda/attention.h"
#ifdef HYD_WITH_CUDNN
#include "kernels/cuda/attention_cudnn.h"
#endif
#include "kernels/cuda/block_copy.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/energy.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"

namespace hydraulis::model {

namespace {

using core::DType;
using core::Tensor;

// Dense bf16 tensor-core peak of the GPU (vendor data sheets): H100/H200 SXM 989 TFLOP/s,
// H100 PCIe 756 TFLOP/s; unknown GPUs report no MFU.
double bf16_peak_flops(const std::string& name) {
  if (name.find("H100") != std::string::npos && name.find("PCIe") != std::string::npos) {
    return 756e12;
  }
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) {
    return 989e12;
  }
  return 0;
}

// The op-time profile: an event pair around every op while on (events reused across takes).
class OpProfiler {
 public:
  bool on() const { return on_; }
  void set(bool on) { on_ = on; }
  size_t begin(std::string name, cudaStream_t stream) {
    if (used_ == records_.size()) {
      Record r;
      HYD_CUDA_CHECK(cudaEventCreate(&r.start));
      HYD_CUDA_CHECK(cudaEventCreate(&r.stop));
      records_.push_back(r);
    }
    records_[used_].name = std::move(name);
    HYD_CUDA_CHECK(cudaEventRecord(records_[used_].start, stream));
    return used_++;
  }
  void end(size_t i, cudaStream_t stream) {
    HYD_CUDA_CHECK(cudaEventRecord(records_[i].stop, stream));
  }
  std::vector<OpTime> take(cudaStream_t stream) {
    HYD_CUDA_CHECK(cudaStreamSynchronize(stream));
    std::vector<OpTime> out;
    for (size_t i = 0; i < used_; ++i) {
      float ms = 0;
      HYD_CUDA_CHECK(cudaEventElapsedTime(&ms, records_[i].start, records_[i].stop));
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const OpTime& t) { return t.name == records_[i].name; });
      if (it == out.end()) it = out.insert(out.end(), OpTime{records_[i].name, 0, 0});
      it->calls += 1;
      it->ms += double(ms);
    }
    used_ = 0;
    return out;
  }

 private:
  struct Record {
    std::string name;
    cudaEvent_t start = nullptr, stop = nullptr;
  };
  std::vector<Record> records_;
  size_t used_ = 0;
  bool on_ = false;
};

// HYD_ATTENTION: auto (default: cuDNN when it loads, else ours), cudnn (an error when it cannot
// run), own. True for cuDNN.
bool use_cudnn_attention() {
  const char* env = std::getenv("HYD_ATTENTION");
  const std::string choice = env != nullptr ? env : "auto";
  HYD_CHECK(choice == "auto" || choice == "cudnn" || choice == "own",
            "HYD_ATTENTION={} is not one of auto, cudnn, own", choice);
  if (choice == "own") return false;
#ifdef HYD_WITH_CUDNN
  std::string why;
  const bool ok = cuda::cudnn_attention_available(&why);
  HYD_CHECK(ok || choice == "auto",
            "HYD_ATTENTION=cudnn but cuDNN attention cannot run: {} (unset it or set own)", why);
  return ok;
#else
  HYD_CHECK(choice == "auto",
            "HYD_ATTENTION=cudnn but this build has no cuDNN (cudnn.h and libcudnn were not found "
            "at configure time): unset it or set own");
  return false;
#endif
}

class CudaOps final : public Ops {
 public:
  CudaOps() : allocator_(cuda::install_allocator()) {
    HYD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    description_ = cuda::device_description();
    peak_flops_ = bf16_peak_flops(description_);
    cudnn_attention_ = use_cudnn_attention();
  }
  ~CudaOps() override {
    (void)cudaStreamSynchronize(stream_);
    (void)cudaStreamDestroy(stream_);
  }
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  // RAII: times the op of its scope while profiling is on; `a`, `b` name the shapes (GEMMs).
  class Scope {
   public:
    Scope(const CudaOps& ops, const char* name, const Tensor* a = nullptr,
          const Tensor* b = nullptr)
        : ops_(ops) {
      if (!ops.profiler_.on()) return;
      std::string full = name;
      for (const Tensor* t : {a, b}) {
        if (t != nullptr) full += " " + core::shape_string(t->shape());
      }
      index_ = ops.profiler_.begin(std::move(full), ops.stream_);
      active_ = true;
    }
    ~Scope() {
      if (active_) ops_.profiler_.end(index_, ops_.stream_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const CudaOps& ops_;
    size_t index_ = 0;
    bool active_ = false;
  };

  core::Device device() const override { return core::Device::kCuda; }
  std::string description() const override { return description_; }
  DType compute_dtype(DType) const override { return DType::kBF16; }
  DType statistic_dtype(DType) const override { return DType::kF32; }
  core::Status check_supported(const LlamaConfig& config) const override {
    const int64_t D = config.head_dim();
    if (D != 64 && D != 128) {
      return core::invalid_argument(
          "model '{}' has head dim {}; the CUDA attention kernels support 64 and 128: pick a "
          "model with such heads (125m, 1b, 7b, ...) or train on --device cpu",
          config.name, D);
    }
    return core::Status::ok();
  }
  int64_t available_memory() const override {
    size_t free_b = 0, total_b = 0;
    HYD_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return int64_t(free_b) + int64_t(allocator_.bytes_cached());
  }
  int64_t peak_memory() const override { return int64_t(allocator_.peak_bytes_in_use()); }
  void reset_peak_memory() const override { allocator_.reset_peak(); }
  void release_cached_memory() const override {
    HYD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    allocator_.release_cached();
  }
  double peak_flops() const override { return peak_flops_; }
  double board_joules() const override { return energy_.joules(); }
  std::string board_id() const override { return energy_.pci_bus_id(); }

  Tensor empty(const core::Shape& shape, DType dtype) const override {
    return Tensor::empty(shape, dtype, core::Device::kCuda);
  }
  Tensor zeros(const core::Shape& shape, DType dtype) const override {
    return cuda::zeros(shape, dtype, stream_);
  }
  void fill_zero(Tensor& t) const override {
    Scope scope(*this, "fill_zero");
    cuda::fill_zero(t, stream_);
  }
  Tensor upload(const Tensor& host) const override {
    return host.device() == core::Device::kCuda ? host : cuda::to_device(host, stream_);
  }
  Tensor upload_as(const Tensor& host, DType dtype) const override {
    return cuda::to_device_as(host, dtype, stream_);
  }
  Tensor to_host(const Tensor& t) const override {
    if (t.device() == core::Device::kCpu) return t;
    const DType dt = t.dtype();
    if (dt == DType::kF32 || dt == DType::kBF16) return cuda::to_host_f32(t, stream_);
    return cuda::to_host(t, stream_);
  }
  void convert(const Tensor& src, Tensor& dst) const override {
    Scope scope(*this, "convert");
    cuda::convert(src, dst, stream_);
  }
  void synchronize() const override { HYD_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  void embedding_fwd(const Tensor& ids, const Tensor& table, Tensor& out) const override {
    Scope scope(*this, "embedding_fwd");
    cuda::embedding_fwd(ids, table, out, stream_);
  }
  void embedding_bwd(const Tensor& ids, const Tensor& dout, Tensor& dtable) const override {
    Scope scope(*this, "embedding_bwd");
    cuda::embedding_bwd(ids, dout, dtable, stream_);
  }
  void rms_norm_fwd(const Tensor& x, const Tensor& weight, double eps, Tensor& y,
                    Tensor& rstd) const override {
    Scope scope(*this, "rms_norm_fwd");
    cuda::rms_norm_fwd(x, weight, eps, y, rstd, stream_);
  }
  void rms_norm_bwd(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                    Tensor& dx, Tensor& dweight) const override {
    Scope scope(*this, "rms_norm_bwd");
    cuda::rms_norm_bwd(dy, x, weight, rstd, dx, dweight, stream_);
  }
  void matmul_fwd(const Tensor& x, const Tensor& w, Tensor& y) const override {
    Scope scope(*this, "matmul_fwd", &x, &w);
    cuda::matmul_fwd(x, w, y, stream_);
  }
  void matmul_bwd(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx,
                  Tensor& dw) const override {
    Scope scope(*this, "matmul_bwd", &x, &w);
    cuda::matmul_bwd(dy, x, w, dx, dw, stream_);
  }
  void matmul_fwd_add(const Tensor& x, const Tensor& w, const Tensor& residual,
                      Tensor& y) const override {
    Scope scope(*this, "matmul_fwd_add", &x, &w);
    cuda::matmul_fwd_add(x, w, residual, y, stream_);
  }
  void matmul_bwd_accumulate(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx,
                             Tensor& dw) const override {
    Scope scope(*this, "matmul_bwd_accumulate", &x, &w);
    cuda::matmul_bwd(dy, x, w, dx, dw, stream_, cuda::InputGrad::kAccumulate);
  }
  void matmul_bwd_write_dw(const Tensor& dy, const Tensor& x, const Tensor& w, Tensor& dx,
                           Tensor& dw) const override {
    Scope scope(*this, "matmul_bwd", &x, &w);
    cuda::matmul_bwd(dy, x, w, dx, dw, stream_, cuda::InputGrad::kWrite, cuda::WeightGrad::kWrite);
  }
  void rms_norm_bwd_add(const Tensor& dy, const Tensor& x, const Tensor& weight,
                        const Tensor& rstd, const Tensor& residual, Tensor& dx,
                        Tensor& dweight) const override {
    Scope scope(*this, "rms_norm_bwd_add");
    cuda::rms_norm_bwd_add(dy, x, weight, rstd, residual, dx, dweight, stream_);
  }
  void rope_fwd(const Tensor& x, const Tensor& cu, double theta, Tensor& y) const override {
    Scope scope(*this, "rope_fwd");
    cuda::rope_fwd(x, cu, theta, y, stream_);
  }
  void rope_bwd(const Tensor& dy, const Tensor& cu, double theta, Tensor& dx) const override {
    Scope scope(*this, "rope_bwd");
    cuda::rope_bwd(dy, cu, theta, dx, stream_);
  }
  void qkv_split_rope(const Tensor& qkv, const Tensor& cu, const Tensor& positions, double theta,
                      Tensor& q, Tensor& k, Tensor& v) const override {
    Scope scope(*this, "qkv_split_rope");
    cuda::qkv_split_rope(qkv, cu, positions, theta, q, k, v, stream_);
  }
  void qkv_merge_rope_bwd(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& cu,
                          const Tensor& positions, double theta, Tensor& dqkv) const override {
    Scope scope(*this, "qkv_merge_rope_bwd");
    cuda::qkv_merge_rope_bwd(dq, dk, dv, cu, positions, theta, dqkv, stream_);
  }
  void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& cu,
                     Tensor& out, Tensor& lse) const override {
    Scope scope(*this, "attention_fwd");
#ifdef HYD_WITH_CUDNN
    if (cudnn_attention_) return cuda::cudnn_attention_fwd(q, k, v, cu, out, lse, stream_);
#endif
    cuda::attention_fwd(q, k, v, cu, out, lse, stream_);
  }
  void attention_bwd(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& out, const Tensor& lse, const Tensor& cu, Tensor& dq, Tensor& dk,
                     Tensor& dv) const override {
    Scope scope(*this, "attention_bwd");
#ifdef HYD_WITH_CUDNN
    if (cudnn_attention_) {
      return cuda::cudnn_attention_bwd(dout, q, k, v, out, lse, cu, dq, dk, dv, stream_);
    }
#endif
    cuda::attention_bwd(dout, q, k, v, out, lse, cu, dq, dk, dv, stream_);
  }
  void rope_positions_fwd(const Tensor& x, const Tensor& positions, double theta,
                          Tensor& y) const override {
    Scope scope(*this, "rope_positions_fwd");
    cuda::rope_positions_fwd(x, positions, theta, y, stream_);
  }
  void rope_positions_bwd(const Tensor& dy, const Tensor& positions, double theta,
                          Tensor& dx) const override {
    Scope scope(*this, "rope_positions_bwd");
    cuda::rope_positions_bwd(dy, positions, theta, dx, stream_);
  }
  void attention_segments_fwd(const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& cu_q, const Tensor& cu_k, Tensor& out,
                              Tensor& lse) const override {
    Scope scope(*this, "attention_segments_fwd");
    cuda::attention_segments_fwd(q, k, v, cu_q, cu_k, out, lse, stream_);
  }
  void attention_segments_bwd(const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& cu_q, const Tensor& cu_k, Tensor& dq, Tensor& dk,
                              Tensor& dv) const override {
    Scope scope(*this, "attention_segments_bwd");
    cuda::attention_segments_bwd(dout, q, k, v, out, lse, cu_q, cu_k, dq, dk, dv, stream_);
  }
  void copy_block(const Tensor& src, Tensor& dst, const cpu::Block2d& block,
                  cpu::BlockCopy mode) const override {
    Scope scope(*this, "copy_block");
    cuda::copy_block(src, dst, block, mode, stream_);
  }
  void* native_stream() const override { return stream_; }
  bool supports_attention_segments() const override { return true; }
  void swiglu_fwd(const Tensor& gate_up, Tensor& out) const override {
    Scope scope(*this, "swiglu_fwd");
    cuda::swiglu_fwd(gate_up, out, stream_);
  }
  void swiglu_bwd(const Tensor& dout, const Tensor& gate_up, Tensor& dgate_up) const override {
    Scope scope(*this, "swiglu_bwd");
    cuda::swiglu_bwd(dout, gate_up, dgate_up, stream_);
  }
  void cross_entropy_fwd(const Tensor& logits, const Tensor& targets, int32_t ignore_index,
                         int64_t global_token_count, Tensor& losses, Tensor& lse,
                         Tensor& loss) const override {
    Scope scope(*this, "cross_entropy_fwd");
    cuda::cross_entropy_fwd(logits, targets, ignore_index, global_token_count, losses, lse, loss,
                            stream_);
  }
  void cross_entropy_bwd(const Tensor& logits, const Tensor& targets, const Tensor& lse,
                         int32_t ignore_index, int64_t global_token_count,
                         Tensor& dlogits) const override {
    Scope scope(*this, "cross_entropy_bwd");
    cuda::cross_entropy_bwd(logits, targets, lse, ignore_index, global_token_count, dlogits,
                            stream_);
  }
  void cross_entropy_fwd_bwd(const Tensor& logits, const Tensor& targets, int32_t ignore_index,
                             int64_t global_token_count, Tensor& losses, Tensor& lse, Tensor& loss,
                             Tensor& dlogits) const override {
    Scope scope(*this, "cross_entropy_fwd_bwd");
    cuda::cross_entropy_fwd_bwd(logits, targets, ignore_index, global_token_count, losses, lse,
                                loss, dlogits, stream_);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& y) const override {
    Scope scope(*this, "add");
    cuda::add(a, b, y, stream_);
  }

  void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                  const cpu::AdamWConfig& config, int64_t step, double grad_scale,
                  Tensor& compute) const override {
    Scope scope(*this, "adamw_step");
    cuda::adamw_step(param, grad, exp_avg, exp_avg_sq, config, step, grad_scale, compute, stream_);
  }
  double grad_norm_sq(std::span<const Tensor> grads) const override {
    Scope scope(*this, "grad_norm_sq");
    Tensor out = empty({1}, DType::kF32);
    cuda::grad_norm_sq(grads, out, stream_);
    return double(cuda::to_host(out, stream_).data<float>()[0]);
  }
  std::string attention_impl() const override { return cudnn_attention_ ? "cudnn" : "own"; }
  void set_op_profiling(bool on) const override { profiler_.set(on); }
  std::vector<OpTime> take_op_profile() const override { return profiler_.take(stream_); }

 private:
  cuda::CachingAllocator& allocator_;
  cudaStream_t stream_ = nullptr;
  mutable OpProfiler profiler_;
  std::string description_;
  double peak_flops_ = 0;
  bool cudnn_attention_ = false;
  cuda::EnergyCounter energy_;  // the board of the device current at construction
};

}  // namespace

core::Status select_cuda_device(int index) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || index < 0 || index >= count) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "GPU {} requested but {} GPU(s) are visible: start at most one rank per "
                            "GPU on each node (check CUDA_VISIBLE_DEVICES)",
                            index, count);
  }
  HYD_CUDA_CHECK(cudaSetDevice(index));
  return core::Status::ok();
}

core::StatusOr<std::shared_ptr<const Ops>> make_cuda_ops() {
  if (!cuda::device_available()) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "--device cuda: no CUDA device is visible (check nvidia-smi and "
                            "CUDA_VISIBLE_DEVICES) or train with --device cpu");
  }
  return std::shared_ptr<const Ops>(std::make_shared<CudaOps>());
}

}  // namespace hydraulis::model
