// Reference varlen causal attention (and its segment form, queries and keys in separate packed
// arrays, for context parallelism). Forward: one work item per (query token, head), softmax with
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
  int64_t q_tokens, k_tokens, heads, kv_heads, head_dim;
  int64_t group() const { return heads / kv_heads; }  // query heads per kv head
};

AttentionDims check_attention(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                              std::string_view op) {
  HYD_CHECK(q.dim() == 3 && k.dim() == 3, "{}: q {} and k {} must be (T, heads, D)", op,
            q.describe(), k.describe());
  AttentionDims d{q.size(0), k.size(0), q.size(1), k.size(1), q.size(2)};
  HYD_CHECK(d.kv_heads >= 1 && d.heads % d.kv_heads == 0,
            "{}: num_kv_heads = {} must divide num_heads = {}", op, d.kv_heads, d.heads);
  check_shape(k, {d.k_tokens, d.kv_heads, d.head_dim}, op);
  check_shape(v, {d.k_tokens, d.kv_heads, d.head_dim}, op);
  check_dtype(k, q.dtype(), op);
  check_dtype(v, q.dtype(), op);
  return d;
}

// Visibility of every row: query t sees keys [first_key[t], last_key[t]] (inclusive; empty when
// last < first) and key j is seen by queries [first_query[j], end_query[j]).
struct Visibility {
  std::vector<int64_t> first_key, last_key, first_query, end_query;
  int64_t max_keys = 0;
};

// Segment s: queries [cq[s], cq[s+1]) and keys [ck[s], ck[s+1]), bottom-right causal: query i of
// the segment sees key i' ≤ i + (k_len − q_len) (segment-local indices). cq == ck: plain causal.
Visibility segment_visibility(const core::Tensor& cu_q, const core::Tensor& cu_k, int64_t q_tokens,
                              int64_t k_tokens, std::string_view op) {
  check_cu_seqlens(cu_q, q_tokens);
  check_cu_seqlens(cu_k, k_tokens);
  HYD_CHECK(cu_q.numel() == cu_k.numel(), "{}: cu_seqlens_q {} and cu_seqlens_k {} differ in size",
            op, cu_q.describe(), cu_k.describe());
  const int32_t* cq = cu_q.data<int32_t>();
  const int32_t* ck = cu_k.data<int32_t>();
  Visibility v;
  v.first_key.assign(size_t(q_tokens), 0);
  v.last_key.assign(size_t(q_tokens), -1);
  v.first_query.assign(size_t(k_tokens), 0);
  v.end_query.assign(size_t(k_tokens), 0);
  for (int64_t s = 0; s + 1 < cu_q.numel(); ++s) {
    const int64_t q_len = cq[s + 1] - cq[s], k_len = ck[s + 1] - ck[s];
    HYD_CHECK(k_len >= q_len, "{}: segment {} has {} queries but only {} keys", op, s, q_len,
              k_len);
    const int64_t shift = k_len - q_len;
    for (int64_t i = 0; i < q_len; ++i) {
      v.first_key[cq[s] + i] = ck[s];
      v.last_key[cq[s] + i] = ck[s] + i + shift;
    }
    for (int64_t j = 0; j < k_len; ++j) {
      // Queries i with i + shift ≥ j, i.e. i ≥ j − shift.
      v.first_query[ck[s] + j] = cq[s] + std::max<int64_t>(0, j - shift);
      v.end_query[ck[s] + j] = cq[s + 1];
    }
    v.max_keys = std::max(v.max_keys, k_len);
  }
  return v;
}

template <typename T>
T dot(const T* a, const T* b, int64_t n) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

template <typename T>
void attention_fwd_impl(const AttentionDims& d, const Visibility& vis, const T* q, const T* k,
                        const T* v, T* out, T* lse) {
  T scale = T(1) / std::sqrt(T(d.head_dim));
  parallel_for(d.q_tokens * d.heads, 4, [&](int64_t begin, int64_t end) {
    std::vector<T> scores(static_cast<size_t>(vis.max_keys));
    for (int64_t item = begin; item < end; ++item) {
      int64_t t = item / d.heads, h = item % d.heads, g = h / d.group();
      int64_t start = vis.first_key[t], last = vis.last_key[t];
      const T* qt = q + (t * d.heads + h) * d.head_dim;  // (D)
      T max_score = -std::numeric_limits<T>::infinity();
      for (int64_t j = start; j <= last; ++j) {
        T s = scale * dot(qt, k + (j * d.kv_heads + g) * d.head_dim, d.head_dim);
        scores[j - start] = s;
        max_score = std::max(max_score, s);
      }
      T* o = out + (t * d.heads + h) * d.head_dim;  // (D)
      std::fill_n(o, d.head_dim, T(0));
      T sum = 0;
      for (int64_t j = start; j <= last; ++j) {
        T p = std::exp(scores[j - start] - max_score);
        sum += p;
        const T* vj = v + (j * d.kv_heads + g) * d.head_dim;
        for (int64_t c = 0; c < d.head_dim; ++c) o[c] += p * vj[c];
      }
      for (int64_t c = 0; c < d.head_dim; ++c) o[c] /= sum;
      lse[h * d.q_tokens + t] = max_score + std::log(sum);
    }
  });
}

template <typename T>
void attention_bwd_impl(const AttentionDims& d, const Visibility& vis, const T* dout, const T* q,
                        const T* k, const T* v, const T* out, const T* lse, T* dq, T* dk, T* dv) {
  T scale = T(1) / std::sqrt(T(d.head_dim));
  int64_t hd = d.head_dim;
  const int64_t Tq = d.q_tokens;
  // delta[h, t] = dout_t · out_t (the softmax Jacobian's row term).
  std::vector<T> delta(static_cast<size_t>(d.heads * Tq));  // (H, Tq)
  parallel_for(Tq, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      for (int64_t h = 0; h < d.heads; ++h) {
        int64_t row = (t * d.heads + h) * hd;
        delta[h * Tq + t] = dot(dout + row, out + row, hd);
      }
    }
  });
  // Rows: dq_t = scale Σ_{visible j} ds_tj k_j.
  parallel_for(Tq * d.heads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t t = item / d.heads, h = item % d.heads, g = h / d.group();
      const T* qt = q + item * hd;
      const T* dot_t = dout + item * hd;
      T row_lse = lse[h * Tq + t], row_delta = delta[h * Tq + t];
      T* dqt = dq + item * hd;
      std::fill_n(dqt, hd, T(0));
      for (int64_t j = vis.first_key[t]; j <= vis.last_key[t]; ++j) {
        const T* kj = k + (j * d.kv_heads + g) * hd;
        const T* vj = v + (j * d.kv_heads + g) * hd;
        T p = std::exp(scale * dot(qt, kj, hd) - row_lse);
        T ds = p * (dot(dot_t, vj, hd) - row_delta);
        for (int64_t c = 0; c < hd; ++c) dqt[c] += scale * ds * kj[c];
      }
    }
  });
  // Columns: dv_j = Σ_{t seeing j} p_tj dout_t, dk_j = scale Σ ds_tj q_t, over the group.
  parallel_for(d.k_tokens * d.kv_heads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t j = item / d.kv_heads, g = item % d.kv_heads;
      const T* kj = k + item * hd;
      const T* vj = v + item * hd;
      T* dkj = dk + item * hd;
      T* dvj = dv + item * hd;
      std::fill_n(dkj, hd, T(0));
      std::fill_n(dvj, hd, T(0));
      for (int64_t h = g * d.group(); h < (g + 1) * d.group(); ++h) {
        for (int64_t t = vis.first_query[j]; t < vis.end_query[j]; ++t) {
          const T* qt = q + (t * d.heads + h) * hd;
          const T* dot_t = dout + (t * d.heads + h) * hd;
          T p = std::exp(scale * dot(qt, kj, hd) - lse[h * Tq + t]);
          T ds = p * (dot(dot_t, vj, hd) - delta[h * Tq + t]);
          for (int64_t c = 0; c < hd; ++c) {
            dvj[c] += p * dot_t[c];
            dkj[c] += scale * ds * qt[c];
          }
        }
      }
    }
  });
}

void attention_fwd_run(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                       const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& out,
                       core::Tensor& lse, std::string_view op) {
  AttentionDims d = check_attention(q, k, v, op);
  check_shape(out, q.shape(), op);
  check_shape(lse, {d.heads, d.q_tokens}, op);
  check_dtype(out, q.dtype(), op);
  check_dtype(lse, q.dtype(), op);
  Visibility vis = segment_visibility(cu_q, cu_k, d.q_tokens, d.k_tokens, op);
  dispatch_floating(q.dtype(), op, [&]<typename T>(T) {
    attention_fwd_impl(d, vis, q.data<T>(), k.data<T>(), v.data<T>(), out.data<T>(),
                       lse.data<T>());
  });
}

void attention_bwd_run(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                       const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                       const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& dq,
                       core::Tensor& dk, core::Tensor& dv, std::string_view op) {
  AttentionDims d = check_attention(q, k, v, op);
  check_shape(dout, q.shape(), op);
  check_shape(out, q.shape(), op);
  check_shape(lse, {d.heads, d.q_tokens}, op);
  check_shape(dq, q.shape(), op);
  check_shape(dk, k.shape(), op);
  check_shape(dv, v.shape(), op);
  check_dtypes(q.dtype(), op, {&dout, &out, &lse, &dq, &dk, &dv});
  Visibility vis = segment_visibility(cu_q, cu_k, d.q_tokens, d.k_tokens, op);
  dispatch_floating(q.dtype(), op, [&]<typename T>(T) {
    attention_bwd_impl(d, vis, dout.data<T>(), q.data<T>(), k.data<T>(), v.data<T>(),
                       out.data<T>(), lse.data<T>(), dq.data<T>(), dk.data<T>(), dv.data<T>());
  });
}

}  // namespace

void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                   const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse) {
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "attention_fwd: q {} and k {} differ in tokens",
            q.describe(), k.describe());
  attention_fwd_run(q, k, v, cu_seqlens, cu_seqlens, out, lse, "attention_fwd");
}

void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                   const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                   const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                   core::Tensor& dv) {
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "attention_bwd: q {} and k {} differ in tokens",
            q.describe(), k.describe());
  attention_bwd_run(dout, q, k, v, out, lse, cu_seqlens, cu_seqlens, dq, dk, dv, "attention_bwd");
}

void attention_segments_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& out, core::Tensor& lse) {
  attention_fwd_run(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, "attention_segments_fwd");
}

void attention_segments_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                            const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& dq, core::Tensor& dk, core::Tensor& dv) {
  attention_bwd_run(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv,
                    "attention_segments_bwd");
}

}  // namespace hydraulis::cpu
