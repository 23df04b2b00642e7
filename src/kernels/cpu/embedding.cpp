// Embedding gather / scatter-add. The backward splits the table's columns over threads, so every
// thread walks all tokens in order: no atomics, and the sum order is fixed (deterministic).
#include "kernels/cpu/embedding.h"

#include <algorithm>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

void check_ids_in_range(const int32_t* ids, int64_t num_tokens, int64_t vocab_size,
                        std::string_view op) {
  for (int64_t t = 0; t < num_tokens; ++t) {
    HYD_CHECK(ids[t] == kMaskedId || (ids[t] >= 0 && ids[t] < vocab_size),
              "{}: token id {} at position {} is outside the vocabulary [0, {})", op, ids[t], t,
              vocab_size);
  }
}

}  // namespace

core::Status embedding_check_ids(const core::Tensor& ids, int64_t vocab_size) {
  check_dtype(ids, core::DType::kI32, "embedding ids");
  const int32_t* id = ids.data<int32_t>();
  for (int64_t t = 0; t < ids.numel(); ++t) {
    if (id[t] < 0 || id[t] >= vocab_size) {
      return core::out_of_range(
          "token id {} at position {} is outside the vocabulary [0, {}): the data was tokenized "
          "with a larger vocabulary than the model's; use the matching --vocab or model config",
          id[t], t, vocab_size);
    }
  }
  return core::Status::ok();
}

void embedding_fwd(const core::Tensor& ids, const core::Tensor& table, core::Tensor& out) {
  check_dtype(ids, core::DType::kI32, "embedding_fwd ids");
  HYD_CHECK(ids.dim() == 1 && table.dim() == 2, "embedding_fwd: ids {} must be 1-d, table {} 2-d",
            ids.describe(), table.describe());
  int64_t num_tokens = ids.size(0), vocab = table.size(0), channels = table.size(1);
  check_shape(out, {num_tokens, channels}, "embedding_fwd out");
  check_dtype(out, table.dtype(), "embedding_fwd out");
  const int32_t* id = ids.data<int32_t>();
  check_ids_in_range(id, num_tokens, vocab, "embedding_fwd");
  dispatch_floating(table.dtype(), "embedding_fwd", [&]<typename T>(T) {
    const T* tab = table.data<T>();  // (V, C)
    T* o = out.data<T>();            // (T, C)
    parallel_for(num_tokens, 64, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        if (id[t] == kMaskedId) {
          std::fill_n(o + t * channels, channels, T(0));
        } else {
          std::copy_n(tab + id[t] * channels, channels, o + t * channels);
        }
      }
    });
  });
}

void embedding_bwd(const core::Tensor& ids, const core::Tensor& dout, core::Tensor& dtable) {
  check_dtype(ids, core::DType::kI32, "embedding_bwd ids");
  HYD_CHECK(ids.dim() == 1 && dtable.dim() == 2, "embedding_bwd: ids {} 1-d, dtable {} 2-d",
            ids.describe(), dtable.describe());
  int64_t num_tokens = ids.size(0), vocab = dtable.size(0), channels = dtable.size(1);
  check_shape(dout, {num_tokens, channels}, "embedding_bwd dout");
  check_dtype(dout, dtable.dtype(), "embedding_bwd dout");
  const int32_t* id = ids.data<int32_t>();
  check_ids_in_range(id, num_tokens, vocab, "embedding_bwd");
  dispatch_floating(dtable.dtype(), "embedding_bwd", [&]<typename T>(T) {
    const T* d = dout.data<T>();  // (T, C)
    T* dtab = dtable.data<T>();   // (V, C)
    parallel_for(channels, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t t = 0; t < num_tokens; ++t) {
        if (id[t] == kMaskedId) continue;
        const T* src = d + t * channels;
        T* dst = dtab + id[t] * channels;
        for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
      }
    });
  });
}

}  // namespace hydraulis::cpu
