// Cross-entropy forward/backward, one token row per work item; row reductions in double.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

void check_targets(const core::Tensor& logits, const core::Tensor& targets, int32_t ignore_index,
                   int64_t global_token_count, std::string_view op) {
  HYD_CHECK(logits.dim() == 2, "{}: logits must be (T, V), is {}", op, logits.describe());
  int64_t num_tokens = logits.size(0), vocab = logits.size(1);
  check_shape(targets, {num_tokens}, op);
  check_dtype(targets, core::DType::kI32, op);
  HYD_CHECK(global_token_count > 0, "{}: global_token_count = {} must be > 0", op,
            global_token_count);
  const int32_t* target = targets.data<int32_t>();
  for (int64_t t = 0; t < num_tokens; ++t) {
    HYD_CHECK(target[t] == ignore_index || target[t] == kTargetOnOtherShard ||
                  (target[t] >= 0 && target[t] < vocab),
              "{}: target {} at position {} is outside the vocabulary [0, {}) and is not the "
              "ignore index {}",
              op, target[t], t, vocab, ignore_index);
  }
}

}  // namespace

void cross_entropy_fwd(const core::Tensor& logits, const core::Tensor& targets,
                       int32_t ignore_index, int64_t global_token_count, core::Tensor& losses,
                       core::Tensor& lse, core::Tensor& loss) {
  check_targets(logits, targets, ignore_index, global_token_count, "cross_entropy_fwd");
  int64_t num_tokens = logits.size(0), vocab = logits.size(1);
  check_shape(losses, {num_tokens}, "cross_entropy_fwd losses");
  check_shape(lse, {num_tokens}, "cross_entropy_fwd lse");
  check_shape(loss, {1}, "cross_entropy_fwd loss");
  check_dtypes(logits.dtype(), "cross_entropy_fwd", {&losses, &lse, &loss});
  const int32_t* target = targets.data<int32_t>();
  dispatch_floating(logits.dtype(), "cross_entropy_fwd", [&]<typename T>(T) {
    const T* x = logits.data<T>();  // (T, V)
    T* nll = losses.data<T>();      // (T)
    T* row_lse = lse.data<T>();     // (T)
    parallel_for(num_tokens, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* row = x + t * vocab;
        T max_logit = vocab > 0 ? *std::max_element(row, row + vocab) : T(0);
        double sum = 0;
        for (int64_t c = 0; c < vocab; ++c) sum += double(std::exp(row[c] - max_logit));
        double log_sum_exp = double(max_logit) + std::log(sum);
        row_lse[t] = T(log_sum_exp);
        const bool no_term = target[t] == ignore_index || target[t] == kTargetOnOtherShard;
        nll[t] = no_term ? T(0) : T(log_sum_exp - double(row[target[t]]));
      }
    });
    double total = 0;  // fixed order: thread-count independent
    for (int64_t t = 0; t < num_tokens; ++t) total += double(nll[t]);
    loss.data<T>()[0] = T(total / double(global_token_count));
  });
}

void cross_entropy_bwd(const core::Tensor& logits, const core::Tensor& targets,
                       const core::Tensor& lse, int32_t ignore_index, int64_t global_token_count,
                       core::Tensor& dlogits) {
  check_targets(logits, targets, ignore_index, global_token_count, "cross_entropy_bwd");
  int64_t num_tokens = logits.size(0), vocab = logits.size(1);
  check_shape(lse, {num_tokens}, "cross_entropy_bwd lse");
  check_shape(dlogits, logits.shape(), "cross_entropy_bwd dlogits");
  check_dtype(lse, logits.dtype(), "cross_entropy_bwd lse");
  check_dtype(dlogits, logits.dtype(), "cross_entropy_bwd dlogits");
  const int32_t* target = targets.data<int32_t>();
  dispatch_floating(logits.dtype(), "cross_entropy_bwd", [&]<typename T>(T) {
    const T* x = logits.data<T>();  // (T, V)
    const T* row_lse = lse.data<T>();
    T* dx = dlogits.data<T>();  // (T, V), may alias logits: each element read, then written
    T inv_count = T(1.0 / double(global_token_count));
    parallel_for(num_tokens, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* row = x + t * vocab;
        T* drow = dx + t * vocab;
        if (target[t] == ignore_index) {
          std::fill_n(drow, vocab, T(0));
          continue;
        }
        for (int64_t c = 0; c < vocab; ++c) {  // target −1 (other shard): no one-hot here
          T p = std::exp(row[c] - row_lse[t]);
          drow[c] = (p - T(c == target[t] ? 1 : 0)) * inv_count;
        }
      }
    });
  });
}

}  // namespace hydraulis::cpu
