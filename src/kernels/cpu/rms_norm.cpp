// RMSNorm forward/backward; row sums accumulate in double. The weight grad is split over columns
// (each thread walks all tokens) so its summation order is fixed.
#include "kernels/cpu/rms_norm.h"

#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

void rms_norm_fwd(const core::Tensor& x, const core::Tensor& weight, double eps, core::Tensor& y,
                  core::Tensor& rstd) {
  HYD_CHECK(x.dim() == 2, "rms_norm_fwd: x must be (T, C), is {}", x.describe());
  HYD_CHECK(eps >= 0, "rms_norm_fwd: eps = {} must be >= 0", eps);
  int64_t num_tokens = x.size(0), channels = x.size(1);
  check_shape(weight, {channels}, "rms_norm_fwd weight");
  check_shape(y, {num_tokens, channels}, "rms_norm_fwd y");
  check_shape(rstd, {num_tokens}, "rms_norm_fwd rstd");
  check_dtypes(x.dtype(), "rms_norm_fwd", {&weight, &y, &rstd});
  dispatch_floating(x.dtype(), "rms_norm_fwd", [&]<typename T>(T) {
    const T* xp = x.data<T>();      // (T, C)
    const T* w = weight.data<T>();  // (C)
    T* yp = y.data<T>();            // (T, C)
    T* r = rstd.data<T>();          // (T)
    parallel_for(num_tokens, 16, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* row = xp + t * channels;
        double sum_sq = 0;
        for (int64_t c = 0; c < channels; ++c) sum_sq += double(row[c]) * double(row[c]);
        T rs = T(1.0 / std::sqrt(sum_sq / double(channels) + eps));
        r[t] = rs;
        T* out = yp + t * channels;
        for (int64_t c = 0; c < channels; ++c) out[c] = row[c] * rs * w[c];
      }
    });
  });
}

void rms_norm_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& weight,
                  const core::Tensor& rstd, core::Tensor& dx, core::Tensor& dweight) {
  HYD_CHECK(x.dim() == 2, "rms_norm_bwd: x must be (T, C), is {}", x.describe());
  int64_t num_tokens = x.size(0), channels = x.size(1);
  check_shape(dy, {num_tokens, channels}, "rms_norm_bwd dy");
  check_shape(weight, {channels}, "rms_norm_bwd weight");
  check_shape(rstd, {num_tokens}, "rms_norm_bwd rstd");
  check_shape(dx, {num_tokens, channels}, "rms_norm_bwd dx");
  check_shape(dweight, {channels}, "rms_norm_bwd dweight");
  check_dtypes(x.dtype(), "rms_norm_bwd", {&dy, &weight, &rstd, &dx, &dweight});
  dispatch_floating(x.dtype(), "rms_norm_bwd", [&]<typename T>(T) {
    const T* g = dy.data<T>();      // (T, C)
    const T* xp = x.data<T>();      // (T, C)
    const T* w = weight.data<T>();  // (C)
    const T* r = rstd.data<T>();    // (T)
    T* gx = dx.data<T>();           // (T, C)
    T* gw = dweight.data<T>();      // (C)
    // dweight first: dx may alias dy.
    parallel_for(channels, 64, [&](int64_t c0, int64_t c1) {
      std::vector<double> acc(static_cast<size_t>(c1 - c0), 0.0);
      for (int64_t t = 0; t < num_tokens; ++t) {
        const T* grow = g + t * channels;
        const T* xrow = xp + t * channels;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += double(grow[c] * xrow[c] * r[t]);
      }
      for (int64_t c = c0; c < c1; ++c) gw[c] += T(acc[c - c0]);
    });
    parallel_for(num_tokens, 16, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* grow = g + t * channels;
        const T* xrow = xp + t * channels;
        double dot = 0;  // Σ_c w·dy·x
        for (int64_t c = 0; c < channels; ++c) dot += double(w[c] * grow[c]) * double(xrow[c]);
        T rs = r[t];
        T coeff = T(dot * double(rs) * double(rs) * double(rs) / double(channels));
        T* out = gx + t * channels;
        for (int64_t c = 0; c < channels; ++c) out[c] = rs * w[c] * grow[c] - xrow[c] * coeff;
      }
    });
  });
}

}  // namespace hydraulis::cpu
