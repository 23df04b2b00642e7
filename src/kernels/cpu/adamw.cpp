// AdamW and the global grad norm. The norm sums fixed 64 Ki-element chunks into per-chunk partials
// that are added in order, so its value does not depend on the number of threads.
#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

void adamw_step(core::Tensor& param, const core::Tensor& grad, core::Tensor& exp_avg,
                core::Tensor& exp_avg_sq, const AdamWConfig& config, int64_t step,
                double grad_scale) {
  HYD_CHECK(step >= 1, "adamw_step: step = {} must be >= 1 (count including this step)", step);
  HYD_CHECK(config.lr >= 0 && config.eps >= 0 && config.weight_decay >= 0,
            "adamw_step: lr = {}, eps = {}, weight_decay = {} must be >= 0", config.lr, config.eps,
            config.weight_decay);
  HYD_CHECK(config.beta1 >= 0 && config.beta1 < 1 && config.beta2 >= 0 && config.beta2 < 1,
            "adamw_step: betas ({}, {}) must be in [0, 1)", config.beta1, config.beta2);
  check_shape(grad, param.shape(), "adamw_step grad");
  check_shape(exp_avg, param.shape(), "adamw_step exp_avg");
  check_shape(exp_avg_sq, param.shape(), "adamw_step exp_avg_sq");
  check_dtypes(param.dtype(), "adamw_step", {&param, &grad, &exp_avg, &exp_avg_sq});
  double bias_correction1 = 1.0 - std::pow(config.beta1, double(step));
  double bias_correction2_sqrt = std::sqrt(1.0 - std::pow(config.beta2, double(step)));
  dispatch_floating(param.dtype(), "adamw_step", [&]<typename T>(T) {
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    T decay = T(1.0 - config.lr * config.weight_decay);
    // 1 − β in double, then rounded, as PyTorch passes Python floats to its fp32 ops.
    T one_minus_beta1 = T(1.0 - config.beta1), one_minus_beta2 = T(1.0 - config.beta2);
    T beta2 = T(config.beta2), eps = T(config.eps);
    T step_size = T(config.lr / bias_correction1), bc2_sqrt = T(bias_correction2_sqrt);
    T scale = T(grad_scale);
    parallel_for(param.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T gi = g[i] * scale;
        p[i] *= decay;
        m[i] += one_minus_beta1 * (gi - m[i]);  // lerp towards g
        v[i] = beta2 * v[i] + one_minus_beta2 * gi * gi;
        p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
      }
    });
  });
}

void grad_norm_sq(std::span<const core::Tensor> grads, core::Tensor& out) {
  check_shape(out, {1}, "grad_norm_sq out");
  constexpr int64_t kChunk = 1 << 16;
  double total = 0;
  for (const core::Tensor& grad : grads) {
    HYD_CHECK(grad.defined() && grad.device() == core::Device::kCpu,
              "grad_norm_sq: every gradient must be a defined cpu tensor");
    int64_t n = grad.numel();
    std::vector<double> partial(static_cast<size_t>((n + kChunk - 1) / kChunk), 0.0);
    dispatch_floating(grad.dtype(), "grad_norm_sq", [&]<typename T>(T) {
      const T* g = grad.data<T>();
      parallel_for(static_cast<int64_t>(partial.size()), 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) {
          double sum = 0;
          for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
            sum += double(g[i]) * double(g[i]);
          }
          partial[c] = sum;
        }
      });
    });
    for (double s : partial) total += s;
  }
  dispatch_floating(out.dtype(), "grad_norm_sq out",
                    [&]<typename T>(T) { out.data<T>()[0] = T(total); });
}

double grad_clip_factor(double total_norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  if (std::isnan(total_norm)) return total_norm;  // propagate, as PyTorch does
  return std::min(1.0, max_norm / (total_norm + 1e-6));
}

}  // namespace hydraulis::cpu
