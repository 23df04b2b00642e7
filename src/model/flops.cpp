// Training FLOPs for MFU (formula and conventions: flops.h, docs/training.md).
#include "model/flops.h"

namespace hydraulis::model {

int64_t matmul_parameters(const LlamaConfig& c) {
  const int64_t C = c.hidden;
  const int64_t attention = C * c.q_width() + 2 * C * c.kv_width() + c.q_width() * C;
  const int64_t mlp = 3 * c.ffn_hidden * C;  // gate_up (2F, C) + down (C, F)
  return c.num_layers * (attention + mlp) + c.vocab_size * C;
}

double training_flops(const LlamaConfig& c, std::span<const int64_t> positions) {
  double tokens = 0, pairs = 0;
  for (int64_t n : positions) {
    tokens += double(n);
    pairs += double(n) * double(n + 1);
  }
  const double dense = 6.0 * double(matmul_parameters(c)) * tokens;
  const double attention =
      6.0 * double(c.num_layers) * double(c.num_heads) * double(c.head_dim()) * pairs;
  return dense + attention;
}

}  // namespace hydraulis::model
