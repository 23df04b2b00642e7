// Global-batch sampler: the document walk, the per-epoch permutation and the JSON state.
// The walk is spelled out step by step in sampler.h; tests: tests/data/sampler_test.cpp.
#include "data/sampler.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace hydraulis::data {

namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed 64-bit generator with a fixed
// definition, unlike std:: distributions whose output differs between standard libraries.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound): rejects the top (2^64 mod bound) values so every residue is
  // equally likely.
  uint64_t below(uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

core::StatusOr<uint64_t> json_unsigned(const core::Json& json, const char* key,
                                       const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const core::Json* field, core::json_field(json, key, source));
  if (field->is_number_unsigned()) return field->get<uint64_t>();
  if (field->is_number_integer() && field->get<int64_t>() >= 0) {
    return static_cast<uint64_t>(field->get<int64_t>());
  }
  return core::invalid_argument("{}: key '{}' must be a non-negative integer, got {}", source, key,
                                field->dump());
}

}  // namespace

std::vector<uint64_t> shuffled_order(uint64_t n, uint64_t seed, int64_t epoch) {
  std::vector<uint64_t> order(n);
  std::iota(order.begin(), order.end(), uint64_t{0});
  // Distinct (seed, epoch) pairs start the generator at well-separated points.
  SplitMix64 mixer(seed);
  uint64_t start = mixer.next() ^ (static_cast<uint64_t>(epoch) * 0xD1B54A32D192ED03ull);
  SplitMix64 rng(start);
  for (uint64_t i = n; i > 1; --i) {
    uint64_t j = rng.below(i);  // Fisher-Yates: swap slot i-1 with a uniform slot in [0, i)
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

int64_t GlobalBatch::num_tokens() const {
  int64_t total = 0;
  for (const SequenceRef& s : sequences) total += s.tokens;
  return total;
}

std::vector<int64_t> GlobalBatch::lengths() const {
  std::vector<int64_t> out;
  out.reserve(sequences.size());
  for (const SequenceRef& s : sequences) out.push_back(s.tokens);
  return out;
}

core::Json SamplerState::to_json() const {
  return core::Json{
      {"epoch", epoch},     {"consumed_samples", consumed_samples}, {"token_offset", token_offset},
      {"batches", batches}, {"num_documents", num_documents},       {"seed", seed}};
}

core::StatusOr<SamplerState> SamplerState::from_json(const core::Json& json,
                                                     const std::string& source) {
  if (!json.is_object())
    return core::invalid_argument("{}: sampler state must be an object", source);
  SamplerState s;
  HYD_ASSIGN_OR_RETURN(s.epoch, core::json_integer(json, "epoch", source));
  HYD_ASSIGN_OR_RETURN(s.consumed_samples, core::json_integer(json, "consumed_samples", source));
  HYD_ASSIGN_OR_RETURN(s.token_offset, core::json_integer(json, "token_offset", source));
  HYD_ASSIGN_OR_RETURN(s.batches, json_unsigned(json, "batches", source));
  HYD_ASSIGN_OR_RETURN(s.num_documents, json_unsigned(json, "num_documents", source));
  HYD_ASSIGN_OR_RETURN(s.seed, json_unsigned(json, "seed", source));
  if (s.epoch < 0 || s.consumed_samples < 0 || s.token_offset < 0) {
    return core::invalid_argument("{}: epoch {}, consumed_samples {}, token_offset {} must be >= 0",
                                  source, s.epoch, s.consumed_samples, s.token_offset);
  }
  return s;
}

std::string batch_mode_name(BatchMode mode) {
  return mode == BatchMode::kTokenBudget ? "global_token_num" : "global_batch_size";
}

std::string long_document_policy_name(LongDocumentPolicy policy) {
  return policy == LongDocumentPolicy::kTruncate ? "truncate" : "split";
}

GlobalBatchSampler::GlobalBatchSampler(std::span<const int32_t> lengths,
                                       const SamplerConfig& config)
    : lengths_(lengths), config_(config) {}

core::StatusOr<GlobalBatchSampler> GlobalBatchSampler::create(std::span<const int32_t> lengths,
                                                              const SamplerConfig& config) {
  if (config.max_seq_len <= 0) {
    return core::invalid_argument("max_seq_len must be > 0, got {}", config.max_seq_len);
  }
  if (config.mode == BatchMode::kTokenBudget && config.global_token_num <= 0) {
    return core::invalid_argument("global_token_num must be > 0, got {}", config.global_token_num);
  }
  if (config.mode == BatchMode::kDocumentCount && config.global_batch_size <= 0) {
    return core::invalid_argument("global_batch_size must be > 0, got {}",
                                  config.global_batch_size);
  }
  GlobalBatchSampler sampler(lengths, config);
  int64_t cap = config.max_seq_len + 1;
  for (size_t i = 0; i < lengths.size(); ++i) {
    int64_t len = lengths[i];
    if (len < 0) return core::invalid_argument("document {} has negative length {}", i, len);
    if (len == 0) continue;
    sampler.documents_per_epoch_ += 1;
    sampler.tokens_per_epoch_ +=
        config.long_documents == LongDocumentPolicy::kTruncate ? std::min(len, cap) : len;
  }
  if (config.mode == BatchMode::kTokenBudget &&
      sampler.tokens_per_epoch_ < config.global_token_num) {
    return core::invalid_argument(
        "the data set holds {} usable tokens ({} non-empty documents{}), fewer than one global "
        "batch of {} tokens: lower --global-token-num or use a larger data set",
        sampler.tokens_per_epoch_, sampler.documents_per_epoch_,
        config.long_documents == LongDocumentPolicy::kTruncate
            ? fmt::format(", each cut to {} tokens", cap)
            : "",
        config.global_token_num);
  }
  if (config.mode == BatchMode::kDocumentCount &&
      sampler.documents_per_epoch_ < config.global_batch_size) {
    return core::invalid_argument(
        "the data set holds {} non-empty documents, fewer than one global batch of {}: lower "
        "the global batch size or use a larger data set",
        sampler.documents_per_epoch_, config.global_batch_size);
  }
  sampler.state_.num_documents = lengths.size();
  sampler.state_.seed = config.seed;
  return sampler;
}

core::Status GlobalBatchSampler::restore(const SamplerState& state) {
  if (state.num_documents != lengths_.size()) {
    return core::invalid_argument(
        "sampler state is for a data set of {} documents, this one has {}: resume with the same "
        "data set",
        state.num_documents, lengths_.size());
  }
  if (config_.order == DocumentOrder::kShuffled && state.seed != config_.seed) {
    return core::invalid_argument("sampler state was made with seed {}, this sampler uses {}",
                                  state.seed, config_.seed);
  }
  auto n = static_cast<int64_t>(lengths_.size());
  if (state.epoch < 0 || state.consumed_samples < 0 || state.consumed_samples > n) {
    return core::invalid_argument("sampler state epoch {} consumed_samples {} out of range [0, {}]",
                                  state.epoch, state.consumed_samples, n);
  }
  if (state.token_offset != 0) {
    bool ok = config_.long_documents == LongDocumentPolicy::kSplit && state.token_offset > 0 &&
              state.consumed_samples < n;
    if (ok) {
      uint64_t position = static_cast<uint64_t>(state.consumed_samples);
      uint64_t doc = config_.order == DocumentOrder::kShuffled
                         ? shuffled_order(lengths_.size(), config_.seed, state.epoch)[position]
                         : position;
      ok = state.token_offset < lengths_[doc];
    }
    if (!ok) {
      return core::invalid_argument(
          "sampler state token_offset {} is not valid here (only split mode resumes inside a "
          "document, and the offset must be inside it)",
          state.token_offset);
    }
  }
  state_ = state;
  state_.seed = config_.seed;
  return core::Status::ok();
}

void GlobalBatchSampler::start_epoch(int64_t epoch) {
  if (config_.order == DocumentOrder::kShuffled && order_epoch_ != epoch) {
    order_ = shuffled_order(lengths_.size(), config_.seed, epoch);
    order_epoch_ = epoch;
  }
}

uint64_t GlobalBatchSampler::document_at(int64_t position) const {
  if (config_.order == DocumentOrder::kShuffled) return order_[static_cast<size_t>(position)];
  return static_cast<uint64_t>(position);
}

bool GlobalBatchSampler::fill_batch(GlobalBatch& batch) {
  const auto n = static_cast<int64_t>(lengths_.size());
  const int64_t cap = config_.max_seq_len + 1;
  const bool split = config_.long_documents == LongDocumentPolicy::kSplit;
  int64_t pos = state_.consumed_samples;
  int64_t off = state_.token_offset;
  std::vector<SequenceRef>& seqs = batch.sequences;
  bool full = false;

  if (config_.mode == BatchMode::kTokenBudget) {
    const int64_t budget = config_.global_token_num;
    int64_t sum = 0;
    while (pos < n && !full) {
      uint64_t doc = document_at(pos);
      int64_t len = lengths_[doc];
      int64_t piece = split ? std::min(len - off, cap) : std::min(len, cap);
      if (piece <= 0) {  // empty document
        ++pos, off = 0;
        continue;
      }
      if (sum + piece >= budget) {  // this one reaches the budget: cut it to fill exactly
        piece = budget - sum;
        full = true;
      }
      seqs.push_back({doc, off, piece});
      sum += piece;
      off += piece;
      // Truncate mode drops the rest of a document (beyond the cap or the budget).
      if (!split || off >= len) ++pos, off = 0;
    }
  } else {
    const int64_t wanted = config_.global_batch_size;
    int64_t documents = 0;
    while (pos < n && documents < wanted) {
      uint64_t doc = document_at(pos++);
      int64_t len = lengths_[doc];
      if (len == 0) continue;
      if (split) {
        for (int64_t o = 0; o < len; o += cap) seqs.push_back({doc, o, std::min(cap, len - o)});
      } else {
        seqs.push_back({doc, 0, std::min(len, cap)});
      }
      ++documents;
    }
    full = documents == wanted;
    off = 0;
  }
  if (!full) return false;
  std::stable_sort(seqs.begin(), seqs.end(),
                   [](const SequenceRef& a, const SequenceRef& b) { return a.tokens < b.tokens; });
  batch.epoch = state_.epoch;
  batch.index = state_.batches;
  state_.consumed_samples = pos;
  state_.token_offset = off;
  state_.batches += 1;
  return true;
}

GlobalBatch GlobalBatchSampler::next() {
  // create() guarantees every epoch holds at least one batch, so this loops at most twice.
  for (int attempt = 0;; ++attempt) {
    HYD_CHECK(attempt < 3,
              "sampler found no batch in a whole epoch ({} usable tokens, {} documents)",
              tokens_per_epoch_, documents_per_epoch_);
    start_epoch(state_.epoch);
    GlobalBatch batch;
    if (fill_batch(batch)) return batch;
    state_.epoch += 1;  // the rest of this epoch is a partial batch: dropped
    state_.consumed_samples = 0;
    state_.token_offset = 0;
  }
}

std::vector<GlobalBatch> GlobalBatchSampler::take(size_t count) {
  std::vector<GlobalBatch> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(next());
  return out;
}

}  // namespace hydraulis::data
