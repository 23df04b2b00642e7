// Host side of the device AdamW and grad norm: argument checks and scalar set-up, then the
// launchers of adamw_kernels.cu. Twin: cpu/adamw.cpp.
#include "kernels/cuda/adamw.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>

#include "kernels/cuda/adamw_kernels.h"
#include "kernels/cuda/cuda_check.h"

namespace hydraulis::cuda {

namespace {

void check(const core::Tensor& t, core::DType dtype, const core::Shape& shape, const char* name) {
  HYD_CHECK(t.defined() && t.device() == core::Device::kCuda && t.dtype() == dtype &&
                (shape.empty() || t.shape() == shape),
            "{}: expected a CUDA {} tensor{}, got {}", name, core::dtype_name(dtype),
            shape.empty() ? "" : " of shape " + core::shape_string(shape),
            t.defined() ? t.describe() : "undefined");
}

}  // namespace

void adamw_step(core::Tensor& param, const core::Tensor& grad, core::Tensor& exp_avg,
                core::Tensor& exp_avg_sq, const AdamWConfig& config, int64_t step,
                double grad_scale, core::Tensor& param_bf16, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(step >= 1, "adamw_step: step = {} must be >= 1 (count including this step)", step);
  HYD_CHECK(config.lr >= 0 && config.eps >= 0 && config.weight_decay >= 0,
            "adamw_step: lr = {}, eps = {}, weight_decay = {} must be >= 0", config.lr, config.eps,
            config.weight_decay);
  HYD_CHECK(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1,
            "adamw_step: betas ({}, {}) must be in [0, 1)", config.beta1, config.beta2);
  check(param, DType::kF32, {}, "adamw_step param (fp32 master)");
  HYD_CHECK(grad.defined() && (grad.dtype() == DType::kF32 || grad.dtype() == DType::kBF16),
            "adamw_step: grad must be f32 or bf16, is {}", grad.defined() ? grad.describe() : "undefined");
  check(grad, grad.dtype(), param.shape(), "adamw_step grad");
  check(exp_avg, DType::kF32, param.shape(), "adamw_step exp_avg");
  check(exp_avg_sq, DType::kF32, param.shape(), "adamw_step exp_avg_sq");
  __nv_bfloat16* copy = nullptr;
  if (param_bf16.defined()) {
    check(param_bf16, DType::kBF16, param.shape(), "adamw_step param_bf16");
    copy = static_cast<__nv_bfloat16*>(param_bf16.raw_data());
  }
  if (param.numel() == 0) return;
  double bc1 = 1.0 - std::pow(config.beta1, double(step));
  double bc2_sqrt = std::sqrt(1.0 - std::pow(config.beta2, double(step)));
  detail::AdamWScalars s{float(1.0 - config.lr * config.weight_decay), float(1.0 - config.beta1),
                         float(config.beta2), float(1.0 - config.beta2), float(config.eps),
                         float(config.lr / bc1), float(bc2_sqrt), float(grad_scale)};
  detail::launch_adamw(static_cast<float*>(param.raw_data()), grad.raw_data(),
                       grad.dtype() == DType::kBF16, static_cast<float*>(exp_avg.raw_data()),
                       static_cast<float*>(exp_avg_sq.raw_data()), copy, param.numel(), s, stream);
}

void grad_norm_sq(std::span<const core::Tensor> grads, core::Tensor& out, cudaStream_t stream) {
  using core::DType;
  check(out, DType::kF32, {1}, "grad_norm_sq out");
  int count = int(grads.size());
  core::Tensor partial = core::Tensor::empty({std::max(1, count) * detail::kAdamNormBlocks},
                                             DType::kF64, core::Device::kCuda);
  HYD_CUDA_CHECK(cudaMemsetAsync(partial.raw_data(), 0, partial.nbytes(), stream));
  for (int i = 0; i < count; ++i) {
    const core::Tensor& g = grads[size_t(i)];
    HYD_CHECK(g.defined() && g.device() == core::Device::kCuda &&
                  (g.dtype() == DType::kF32 || g.dtype() == DType::kBF16),
              "grad_norm_sq: tensor {} must be a CUDA f32/bf16 tensor, is {}", i,
              g.defined() ? g.describe() : "undefined");
    if (g.numel() == 0) continue;
    detail::launch_sq_sum_partial(g.raw_data(), g.dtype() == DType::kBF16, g.numel(),
                                  static_cast<double*>(partial.raw_data()) + int64_t(i) * detail::kAdamNormBlocks,
                                  stream);
  }
  detail::launch_sum_partials(static_cast<const double*>(partial.raw_data()), int(partial.numel()),
                              static_cast<float*>(out.raw_data()), stream);
}

}  // namespace hydraulis::cuda
