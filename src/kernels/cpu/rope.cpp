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

// position[t]: the rotation position of token t.
template <typename T>
void rope_apply(const T* in, const std::vector<int64_t>& position, int64_t heads,
                int64_t head_dim, double theta, RopeDirection direction, T* out) {
  const int64_t num_tokens = int64_t(position.size());
  int64_t half = head_dim / 2;
  int64_t max_len = 0;
  for (int64_t p : position) max_len = std::max<int64_t>(max_len, p + 1);
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

void rope_run(const core::Tensor& in, const std::vector<int64_t>& position, double theta,
              RopeDirection direction, core::Tensor& out, std::string_view op) {
  HYD_CHECK(in.dim() == 3, "{}: input must be (T, H, D), is {}", op, in.describe());
  int64_t heads = in.size(1), head_dim = in.size(2);
  HYD_CHECK(head_dim % 2 == 0, "{}: head dim D = {} must be even", op, head_dim);
  HYD_CHECK(theta > 0, "{}: theta = {} must be > 0", op, theta);
  check_shape(out, in.shape(), op);
  check_dtype(out, in.dtype(), op);
  dispatch_floating(in.dtype(), op, [&]<typename T>(T) {
    rope_apply(in.data<T>(), position, heads, head_dim, theta, direction, out.data<T>());
  });
}

// position[t] = t − start of t's sequence.
std::vector<int64_t> sequence_positions(const core::Tensor& cu_seqlens, int64_t num_tokens) {
  check_cu_seqlens(cu_seqlens, num_tokens);
  const int32_t* cu = cu_seqlens.data<int32_t>();
  std::vector<int64_t> position(static_cast<size_t>(num_tokens));
  for (int64_t b = 0; b + 1 < cu_seqlens.numel(); ++b) {
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) position[t] = t - cu[b];
  }
  return position;
}

std::vector<int64_t> explicit_positions(const core::Tensor& positions, int64_t num_tokens,
                                        std::string_view op) {
  check_shape(positions, {num_tokens}, op);
  check_dtype(positions, core::DType::kI32, op);
  const int32_t* p = positions.data<int32_t>();
  std::vector<int64_t> position(static_cast<size_t>(num_tokens));
  for (int64_t t = 0; t < num_tokens; ++t) {
    HYD_CHECK(p[t] >= 0, "{}: position {} of token {} must be >= 0", op, p[t], t);
    position[t] = p[t];
  }
  return position;
}

// position[t] from `positions` where defined, else from cu_seqlens.
std::vector<int64_t> token_positions(const core::Tensor& cu_seqlens, const core::Tensor& positions,
                                     int64_t num_tokens, std::string_view op) {
  return positions.defined() ? explicit_positions(positions, num_tokens, op)
                             : sequence_positions(cu_seqlens, num_tokens);
}

// The fused projection's column blocks: q (T, H, D), k and v (T, Hkv, D) of qkv (T, W).
void check_qkv(const core::Tensor& qkv, const core::Tensor& q, const core::Tensor& k,
               const core::Tensor& v, std::string_view op) {
  HYD_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && qkv.dim() == 2,
            "{}: q (T, H, D), k, v (T, Hkv, D) and qkv (T, W) expected, got {}, {}, {}, {}", op,
            q.describe(), k.describe(), v.describe(), qkv.describe());
  const int64_t T = q.size(0), D = q.size(2), Hkv = k.size(1);
  check_shape(k, {T, Hkv, D}, op);
  check_shape(v, {T, Hkv, D}, op);
  check_shape(qkv, {T, (q.size(1) + 2 * Hkv) * D}, op);
  for (const core::Tensor* t : {&k, &v, &qkv}) check_dtype(*t, q.dtype(), op);
}

// Copies between qkv's column blocks and q, k, v: kSplit qkv → q, k, v; kMerge the reverse.
enum class QkvCopy { kSplit, kMerge };
void copy_qkv(core::Tensor& qkv, core::Tensor& q, core::Tensor& k, core::Tensor& v, QkvCopy dir,
              std::string_view op) {
  const int64_t T = q.size(0), W = qkv.size(1);
  dispatch_floating(q.dtype(), op, [&]<typename T_>(T_) {
    T_* fused = qkv.data<T_>();
    int64_t col = 0;
    for (core::Tensor* part : {&q, &k, &v}) {
      const int64_t width = part->size(1) * part->size(2);
      T_* p = part->data<T_>();
      for (int64_t t = 0; t < T; ++t) {
        T_* a = fused + t * W + col;
        T_* b = p + t * width;
        if (dir == QkvCopy::kSplit) {
          std::copy(a, a + width, b);
        } else {
          std::copy(b, b + width, a);
        }
      }
      col += width;
    }
  });
}

}  // namespace

void qkv_split_rope(const core::Tensor& qkv, const core::Tensor& cu_seqlens,
                    const core::Tensor& positions, double theta, core::Tensor& q, core::Tensor& k,
                    core::Tensor& v) {
  constexpr std::string_view op = "qkv_split_rope";
  check_qkv(qkv, q, k, v, op);
  core::Tensor src = qkv;  // read only: copy_qkv's kSplit does not write it
  copy_qkv(src, q, k, v, QkvCopy::kSplit, op);
  const std::vector<int64_t> position = token_positions(cu_seqlens, positions, q.size(0), op);
  rope_run(q, position, theta, RopeDirection::kForward, q, op);
  rope_run(k, position, theta, RopeDirection::kForward, k, op);
}

void qkv_merge_rope_bwd(const core::Tensor& dq, const core::Tensor& dk, const core::Tensor& dv,
                        const core::Tensor& cu_seqlens, const core::Tensor& positions,
                        double theta, core::Tensor& dqkv) {
  constexpr std::string_view op = "qkv_merge_rope_bwd";
  check_qkv(dqkv, dq, dk, dv, op);
  const std::vector<int64_t> position = token_positions(cu_seqlens, positions, dq.size(0), op);
  core::Tensor rq = core::Tensor::empty(dq.shape(), dq.dtype());
  core::Tensor rk = core::Tensor::empty(dk.shape(), dk.dtype());
  core::Tensor cv = dv;  // read only: copy_qkv's kMerge does not write it
  rope_run(dq, position, theta, RopeDirection::kBackward, rq, op);
  rope_run(dk, position, theta, RopeDirection::kBackward, rk, op);
  copy_qkv(dqkv, rq, rk, cv, QkvCopy::kMerge, op);
}

void rope_fwd(const core::Tensor& x, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& y) {
  rope_run(x, sequence_positions(cu_seqlens, x.size(0)), theta, RopeDirection::kForward, y,
           "rope_fwd");
}

void rope_bwd(const core::Tensor& dy, const core::Tensor& cu_seqlens, double theta,
              core::Tensor& dx) {
  rope_run(dy, sequence_positions(cu_seqlens, dy.size(0)), theta, RopeDirection::kBackward, dx,
           "rope_bwd");
}

void rope_positions_fwd(const core::Tensor& x, const core::Tensor& positions, double theta,
                        core::Tensor& y) {
  rope_run(x, explicit_positions(positions, x.size(0), "rope_positions_fwd"), theta,
           RopeDirection::kForward, y, "rope_positions_fwd");
}

void rope_positions_bwd(const core::Tensor& dy, const core::Tensor& positions, double theta,
                        core::Tensor& dx) {
  rope_run(dy, explicit_positions(positions, dy.size(0), "rope_positions_bwd"), theta,
           RopeDirection::kBackward, dx, "rope_positions_bwd");
}

}  // namespace hydraulis::cpu
