// Reference varlen causal attention. Forward: one work item per (query token, head), softmax with
// the running max. Backward in two passes like flash-attention's: rows (dq per query) and columns
// (dk, dv per key and kv head), each recomputing p from the saved lse, so every output element is
// written by exactly one thread (no atomics, thread-count independent).
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

struct AttentionDims {
  int64_t tokens, heads, kv_heads, head_dim;
  int64_t group() const { return heads / kv_heads; }  // query heads per kv head
};

AttentionDims check_attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                              const core::Tensor& cu_seqlens, std::string_view op) {
  HYD_CHECK(q.dim() == 3 && k.dim() == 3, "{}: q {} and k {} must be (T, heads, D)", op,
            q.describe(), k.describe());
  AttentionDims d{q.size(0), q.size(1), k.size(1), q.size(2)};
  HYD_CHECK(d.kv_heads >= 1 && d.heads % d.kv_heads == 0,
            "{}: num_kv_heads = {} must divide num_heads = {}", op, d.kv_heads, d.heads);
  check_shape(k, {d.tokens, d.kv_heads, d.head_dim}, op);
  check_shape(v, {d.tokens, d.kv_heads, d.head_dim}, op);
  check_dtype(k, q.dtype(), op);
  check_dtype(v, q.dtype(), op);
  check_cu_seqlens(cu_seqlens, d.tokens);
  return d;
}

// Start and end (exclusive) of the sequence of every token.
struct SequenceBounds {
  std::vector<int64_t> start, end;
  int64_t max_len = 0;
};

SequenceBounds sequence_bounds(const core::Tensor& cu_seqlens, int64_t tokens) {
  const int32_t* cu = cu_seqlens.data<int32_t>();
  SequenceBounds bounds;
  bounds.start.resize(static_cast<size_t>(tokens));
  bounds.end.resize(static_cast<size_t>(tokens));
  for (int64_t b = 0; b + 1 < cu_seqlens.numel(); ++b) {
    bounds.max_len = std::max<int64_t>(bounds.max_len, cu[b + 1] - cu[b]);
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
      bounds.start[t] = cu[b];
      bounds.end[t] = cu[b + 1];
    }
  }
  return bounds;
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

template <typename T>
void attention_fwd_impl(const AttentionDims& d, const SequenceBounds& bounds, const T* q,
                        const T* k, const T* v, T* out, T* lse) {
  T scale = T(1) / std::sqrt(T(d.head_dim));
  parallel_for(d.tokens * d.heads, 4, [&](int64_t begin, int64_t end) {
    std::vector<T> scores(static_cast<size_t>(bounds.max_len));
    for (int64_t item = begin; item < end; ++item) {
      int64_t t = item / d.heads, h = item % d.heads, g = h / d.group();
      int64_t start = bounds.start[t];
      const T* qt = q + (t * d.heads + h) * d.head_dim;  // (D)
      T max_score = -std::numeric_limits<T>::infinity();
      for (int64_t j = start; j <= t; ++j) {
        T s = scale * dot(qt, k + (j * d.kv_heads + g) * d.head_dim, d.head_dim);
        scores[j - start] = s;
        max_score = std::max(max_score, s);
      }
      T* o = out + (t * d.heads + h) * d.head_dim;  // (D)
      std::fill_n(o, d.head_dim, T(0));
      T sum = 0;
      for (int64_t j = start; j <= t; ++j) {
        T p = std::exp(scores[j - start] - max_score);
        sum += p;
        const T* vj = v + (j * d.kv_heads + g) * d.head_dim;
        for (int64_t c = 0; c < d.head_dim; ++c) o[c] += p * vj[c];
      }
      for (int64_t c = 0; c < d.head_dim; ++c) o[c] /= sum;
      lse[h * d.tokens + t] = max_score + std::log(sum);
    }
  });
}

template <typename T>
void attention_bwd_impl(const AttentionDims& d, const SequenceBounds& bounds, const T* dout,
                        const T* q, const T* k, const T* v, const T* out, const T* lse, T* dq,
                        T* dk, T* dv) {
  T scale = T(1) / std::sqrt(T(d.head_dim));
  int64_t hd = d.head_dim;
  // delta[h, t] = dout_t · out_t (the softmax Jacobian's row term).
  std::vector<T> delta(static_cast<size_t>(d.heads * d.tokens));  // (H, T)
  parallel_for(d.tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t h = 0; h < d.heads; ++h) {
        int64_t row = (t * d.heads + h) * hd;
        delta[h * d.tokens + t] = dot(dout + row, out + row, hd);
      }
    }
  });
  // Rows: dq_t = scale Σ_{j ≤ t} ds_tj k_j.
  parallel_for(d.tokens * d.heads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t t = item / d.heads, h = item % d.heads, g = h / d.group();
      const T* qt = q + item * hd;
      const T* dot_t = dout + item * hd;
      T row_lse = lse[h * d.tokens + t], row_delta = delta[h * d.tokens + t];
      T* dqt = dq + item * hd;
      std::fill_n(dqt, hd, T(0));
      for (int64_t j = bounds.start[t]; j <= t; ++j) {
        const T* kj = k + (j * d.kv_heads + g) * hd;
        const T* vj = v + (j * d.kv_heads + g) * hd;
        T p = std::exp(scale * dot(qt, kj, hd) - row_lse);
        T ds = p * (dot(dot_t, vj, hd) - row_delta);
        for (int64_t c = 0; c < hd; ++c) dqt[c] += scale * ds * kj[c];
      }
    }
  });
  // Columns: dv_j = Σ_{t ≥ j} p_tj dout_t, dk_j = scale Σ_{t ≥ j} ds_tj q_t, over the group.
  parallel_for(d.tokens * d.kv_heads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t j = item / d.kv_heads, g = item % d.kv_heads;
      const T* kj = k + item * hd;
      const T* vj = v + item * hd;
      T* dkj = dk + item * hd;
      T* dvj = dv + item * hd;
      std::fill_n(dkj, hd, T(0));
      std::fill_n(dvj, hd, T(0));
      for (int64_t h = g * d.group(); h < (g + 1) * d.group(); ++h) {
        for (int64_t t = j; t < bounds.end[j]; ++t) {
          const T* qt = q + (t * d.heads + h) * hd;
          const T* dot_t = dout + (t * d.heads + h) * hd;
          T p = std::exp(scale * dot(qt, kj, hd) - lse[h * d.tokens + t]);
          T ds = p * (dot(dot_t, vj, hd) - delta[h * d.tokens + t]);
          for (int64_t c = 0; c < hd; ++c) {
            dvj[c] += p * dot_t[c];
            dkj[c] += scale * ds * qt[c];
          }
        }
      }
    }
  });
}

}  // namespace

void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                   const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse) {
  AttentionDims d = check_attention(q, k, v, cu_seqlens, "attention_fwd");
  check_shape(out, q.shape(), "attention_fwd out");
  check_shape(lse, {d.heads, d.tokens}, "attention_fwd lse");
  check_dtype(out, q.dtype(), "attention_fwd out");
  check_dtype(lse, q.dtype(), "attention_fwd lse");
  SequenceBounds bounds = sequence_bounds(cu_seqlens, d.tokens);
  dispatch_floating(q.dtype(), "attention_fwd", [&]<typename T>(T) {
    attention_fwd_impl(d, bounds, q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                       lse.data<T>());
  });
}

void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                   const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                   const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                   core::Tensor& dv) {
  AttentionDims d = check_attention(q, k, v, cu_seqlens, "attention_bwd");
  check_shape(dout, q.shape(), "attention_bwd dout");
  check_shape(out, q.shape(), "attention_bwd out");
  check_shape(lse, {d.heads, d.tokens}, "attention_bwd lse");
  check_shape(dq, q.shape(), "attention_bwd dq");
  check_shape(dk, k.shape(), "attention_bwd dk");
  check_shape(dv, v.shape(), "attention_bwd dv");
  check_dtypes(q.dtype(), "attention_bwd", {&dout, &out, &lse, &dq, &dk, &dv});
  SequenceBounds bounds = sequence_bounds(cu_seqlens, d.tokens);
  dispatch_floating(q.dtype(), "attention_bwd", [&]<typename T>(T) {
    attention_bwd_impl(d, bounds, dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(),
                       out.data<T>(), lse.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>());
  });
}

}  // namespace hydraulis::cpu
