// RoPE forward/backward over packed sequences. cos/sin are tabulated once per call for positions
// 0 .. longest sequence − 1 (the HF formula in the kernel dtype), then applied per (token, head).
#include "kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

enum class RopeDirection { kForward, kBackward };

template <typename T>
void rope_apply(const T* in, const int32_t* cu, int64_t num_seqs, int64_t num_tokens, int64_t heads,
                int64_t head_dim, double theta, RopeDirection direction, T* out) {
  int64_t half = head_dim / 2;
  int64_t max_len = 0;
  for (int64_t b = 0; b < num_seqs; ++b) max_len = std::max<int64_t>(max_len, cu[b + 1] - cu[b]);
  // inv_freq_i = 1 / theta^(2i / D) and angle = p · inv_freq_i, both in T as HF computes them.
  std::vector<T> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    inv_freq[i] = T(1) / std::pow(T(theta), T(2 * i) / T(head_dim));
  }
  std::vector<T> cos_table(static_cast<size_t>(max_len * half));  // (max_len, D/2)
  std::vector<T> sin_table(static_cast<size_t>(max_len * half));  // (max_len, D/2)
  for (int64_t p = 0; p < max_len; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      T angle = T(p) * inv_freq[i];
      cos_table[p * half + i] = std::cos(angle);
      sin_table[p * half + i] = std::sin(angle);
    }
  }
  // position[t] = t − start of t's sequence.
  std::vector<int64_t> position(static_cast<size_t>(num_tokens));
  for (int64_t b = 0; b < num_seqs; ++b) {
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) position[t] = t - cu[b];
  }
  T sign = direction == RopeDirection::kForward ? T(1) : T(-1);
  parallel_for(num_tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const T* cs = cos_table.data() + position[t] * half;
      const T* sn = sin_table.data() + position[t] * half;
      for (int64_t h = 0; h < heads; ++h) {
        const T* x = in + (t * heads + h) * head_dim;  // (D)
        T* y = out + (t * heads + h) * head_dim;       // (D)
        for (int64_t i = 0; i < half; ++i) {
          T x1 = x[i], x2 = x[i + half];
          T s = sign * sn[i];
          y[i] = x1 * cs[i] - x2 * s;
          y[i + half] = x2 * cs[i] + x1 * s;
        }
      }
    }
  });
}

void rope_run(const core::Tensor& in, const core::Tensor& cu_seqlens, double theta,
              RopeDirection direction, core::Tensor& out, std::string_view op) {
  HYD_CHECK(in.dim() == 3, "{}: input must be (T, H, D), is {}", op, in.describe());
  int64_t num_tokens = in.size(0), heads = in.size(1), head_dim = in.size(2);
  HYD_CHECK(head_dim % 2 == 0, "{}: head dim D = {} must be even", op, head_dim);
  HYD_CHECK(theta > 0, "{}: theta = {} must be > 0", op, theta);
  check_shape(out, in.shape(), op);
  check_dtype(out, in.dtype(), op);
  check_cu_seqlens(cu_seqlens, num_tokens);
  dispatch_floating(in.dtype(), op, [&]<typename T>(T) {
    rope_apply(in.data<T>(), cu_seqlens.data<int32_t>(), cu_seqlens.numel() - 1, num_tokens, heads,
               head_dim, theta, direction, out.data<T>());
  });
}

}  // namespace

void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& y) {
  rope_run(x, cu_seqlens, theta, RopeDirection::kForward, y, "rope_fwd");
}

void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& dx) {
  rope_run(dy, cu_seqlens, theta, RopeDirection::kBackward, dx, "rope_bwd");
}

}  // namespace hydraulis::cpu
