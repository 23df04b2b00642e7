// Global-batch sampler (spec.md §1): walks the documents of a data set (given as per-document
// token counts) in order, or in a seeded per-epoch shuffle, and cuts them into global batches
// of exactly GLOBAL_TOKEN_NUM tokens (or GLOBAL_BATCH_SIZE documents). Its SamplerState
// serializes to JSON, and restoring it continues with exactly the batches an uninterrupted
// sampler would have produced. Tests: tests/data/sampler_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace hydraulis::data {

enum class BatchMode {
  kTokenBudget,    // GLOBAL_TOKEN_NUM tokens per batch (the paper's mode)
  kDocumentCount,  // GLOBAL_BATCH_SIZE documents per batch (batching methods 0 and 1)
};

// What happens to a document longer than MAX_SEQ_LEN + 1 tokens.
enum class LongDocumentPolicy {
  kTruncate,  // cut to MAX_SEQ_LEN + 1 tokens, the rest is dropped (original)
  kSplit,     // split into consecutive sequences of at most MAX_SEQ_LEN + 1 tokens
};

enum class DocumentOrder {
  kSequential,  // document 0, 1, 2, ... in every epoch (original)
  kShuffled,    // a permutation per epoch drawn from (seed, epoch), identical on every platform
};

struct SamplerConfig {
  BatchMode mode = BatchMode::kTokenBudget;
  int64_t global_token_num = 200000;  // kTokenBudget
  int64_t global_batch_size = 0;      // kDocumentCount
  int64_t max_seq_len = 32768;        // sequences hold at most max_seq_len + 1 tokens
  LongDocumentPolicy long_documents = LongDocumentPolicy::kTruncate;
  DocumentOrder order = DocumentOrder::kSequential;
  uint64_t seed = 0;  // kShuffled
};

// One sequence of a global batch: `tokens` tokens of document `document` from `offset` on.
struct SequenceRef {
  uint64_t document = 0;
  int64_t offset = 0;
  int64_t tokens = 0;
  bool operator==(const SequenceRef&) const = default;
};

struct GlobalBatch {
  uint64_t index = 0;  // 0, 1, 2, ... over the sampler's whole life (across epochs)
  int64_t epoch = 0;
  // Sorted by tokens ascending; ties keep the order in which the walk met them.
  std::vector<SequenceRef> sequences;

  int64_t num_tokens() const;
  std::vector<int64_t> lengths() const;  // tokens of each sequence, in sequence order
  bool operator==(const GlobalBatch&) const = default;
};

// Where the walk stands before the next batch. In kTruncate mode the remainder of a document
// cut at the budget is dropped (as the original does), so token_offset stays 0; in kSplit mode
// the next batch continues that document at token_offset.
struct SamplerState {
  int64_t epoch = 0;
  int64_t consumed_samples = 0;  // documents of this epoch's order already used
  int64_t token_offset = 0;      // tokens already used of the next document (kSplit)
  uint64_t batches = 0;          // batches produced so far (the next batch's index)
  // Checked on restore, so a state cannot silently be applied to another data set or seed.
  uint64_t num_documents = 0;
  uint64_t seed = 0;

  bool operator==(const SamplerState&) const = default;
  core::Json to_json() const;
  static core::StatusOr<SamplerState> from_json(const core::Json& json, const std::string& source);
};

std::string batch_mode_name(BatchMode mode);
std::string long_document_policy_name(LongDocumentPolicy policy);

// Never runs out: when an epoch cannot fill another batch, its partial batch is dropped and the
// next epoch starts. The lengths span must outlive the sampler.
class GlobalBatchSampler {
 public:
  // Fails on max_seq_len <= 0, a budget <= 0, negative lengths, or a data set too small for one
  // batch (fewer usable tokens than global_token_num, or fewer non-empty documents than
  // global_batch_size).
  static core::StatusOr<GlobalBatchSampler> create(std::span<const int32_t> lengths,
                                                   const SamplerConfig& config);

  GlobalBatch next();
  std::vector<GlobalBatch> take(size_t count);

  // The state before the next batch; restore() of it reproduces the following batches exactly.
  const SamplerState& state() const { return state_; }
  core::Status restore(const SamplerState& state);

  const SamplerConfig& config() const { return config_; }
  // Usable tokens per epoch (after the MAX_SEQ_LEN + 1 cut in kTruncate mode).
  int64_t tokens_per_epoch() const { return tokens_per_epoch_; }

 private:
  GlobalBatchSampler(std::span<const int32_t> lengths, const SamplerConfig& config);
  void start_epoch(int64_t epoch);
  uint64_t document_at(int64_t position) const;
  // Fills one batch of the current epoch; false (state unchanged) when the epoch runs out.
  bool fill_batch(GlobalBatch& batch);

  std::span<const int32_t> lengths_;
  SamplerConfig config_;
  SamplerState state_;
  int64_t tokens_per_epoch_ = 0;
  int64_t documents_per_epoch_ = 0;  // non-empty documents
  int64_t order_epoch_ = -1;         // epoch whose permutation is in order_
  std::vector<uint64_t> order_;      // kShuffled: the current epoch's document order
};

// Deterministic permutation of 0..n-1 for (seed, epoch): SplitMix64 stream + Fisher-Yates with
// unbiased bounded draws, so it is the same on every platform and standard library.
std::vector<uint64_t> shuffled_order(uint64_t n, uint64_t seed, int64_t epoch);

}  // namespace hydraulis::data
