// Token embedding: out[t] = table[ids[t]]; backward scatter-adds dout rows into the table grad.
// Ids are int32 (GPT-2's padded vocabulary fits). An id outside [0, V) is a caller bug here:
// validate host ids first with embedding_check_ids, which returns a Status naming id and position.
// Tests: tests/kernels/embedding_test.cpp.
#pragma once

#include "core/status.h"
#include "core/tensor.h"

namespace hydraulis::cpu {

// OK when every ids[t] is in [0, vocab_size); else names the first bad id and its position.
core::Status embedding_check_ids(const core::Tensor& ids, int64_t vocab_size);

// Id of a token held by another vocabulary shard (vocab-parallel embedding) or a padding row: its
// output row is 0 and it adds no gradient. The same op gathers/scatters rows of any (N, C) tensor
// (context parallelism gathers keys with it).
inline constexpr int32_t kMaskedId = -1;

// ids (T) i32 in [0, V) or kMaskedId, table (V, C), out (T, C).
void embedding_fwd(const core::Tensor& ids, const core::Tensor& table, core::Tensor& out);

// dtable += scatter of dout rows at ids (repeated ids sum). ids (T), dout (T, C), dtable (V, C).
void embedding_bwd(const core::Tensor& ids, const core::Tensor& dout, core::Tensor& dtable);

}  // namespace hydraulis::cpu
