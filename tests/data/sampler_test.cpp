// Tests of the global-batch sampler on a 10-document fixture whose batches are worked out by
// hand in the comments: exact budget, truncation, MAX_SEQ_LEN cut vs split, dropped trailing
// batch, epochs, seeded shuffle, exact resume through JSON, and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "data/sampler.h"

namespace hydraulis::data {
namespace {

// 48 tokens in 10 documents.
const std::vector<int32_t> kLengths = {5, 3, 8, 2, 7, 4, 6, 1, 9, 3};

using Refs = std::vector<SequenceRef>;

SamplerConfig budget_config(int64_t tokens, int64_t max_seq_len) {
  SamplerConfig config;
  config.global_token_num = tokens;
  config.max_seq_len = max_seq_len;
  return config;
}

GlobalBatchSampler make(const std::vector<int32_t>& lengths, const SamplerConfig& config) {
  auto sampler = GlobalBatchSampler::create(lengths, config);
  EXPECT_TRUE(sampler.is_ok()) << sampler.status().to_string();
  return std::move(sampler).value();
}

TEST(Sampler, TokenBudgetTruncatesTheLastDocument) {
  GlobalBatchSampler sampler = make(kLengths, budget_config(10, 100));
  // d0 5 + d1 3 = 8; d2 (8) would reach 16 >= 10, so it is cut to 2 tokens.
  GlobalBatch b0 = sampler.next();
  EXPECT_EQ(b0.sequences, (Refs{{2, 0, 2}, {1, 0, 3}, {0, 0, 5}}));
  EXPECT_EQ(b0.num_tokens(), 10);
  EXPECT_EQ(b0.index, 0u);
  EXPECT_EQ(sampler.state().consumed_samples, 3);
  // d3 2 + d4 7 = 9; d5 (4) cut to 1.
  EXPECT_EQ(sampler.next().sequences, (Refs{{5, 0, 1}, {3, 0, 2}, {4, 0, 7}}));
  // d6 6 + d7 1 = 7; d8 (9) cut to 3. Sorted ascending: 1, 3, 6.
  GlobalBatch b2 = sampler.next();
  EXPECT_EQ(b2.sequences, (Refs{{7, 0, 1}, {8, 0, 3}, {6, 0, 6}}));
  EXPECT_EQ(b2.lengths(), (std::vector<int64_t>{1, 3, 6}));
  // Only d9 (3 tokens) is left: a partial batch, dropped; epoch 1 repeats batch 0.
  GlobalBatch b3 = sampler.next();
  EXPECT_EQ(b3.epoch, 1);
  EXPECT_EQ(b3.index, 3u);
  EXPECT_EQ(b3.sequences, b0.sequences);
  EXPECT_EQ(sampler.state().epoch, 1);
  EXPECT_EQ(sampler.state().consumed_samples, 3);
}

TEST(Sampler, BudgetMetExactlyKeepsWholeDocument) {
  GlobalBatchSampler sampler = make(kLengths, budget_config(8, 100));
  // d0 5 + d1 3 = 8 exactly: d1 is whole, the batch ends there.
  EXPECT_EQ(sampler.next().sequences, (Refs{{1, 0, 3}, {0, 0, 5}}));
  EXPECT_EQ(sampler.state().consumed_samples, 2);
  EXPECT_EQ(sampler.next().sequences, (Refs{{2, 0, 8}}));
  // d3 2 + d4 7 = 9 > 8: d4 cut to 6.
  EXPECT_EQ(sampler.next().sequences, (Refs{{3, 0, 2}, {4, 0, 6}}));
}

TEST(Sampler, MaxSeqLenTruncate) {
  // max_seq_len 4 -> sequences of at most 5 tokens; usable lengths 5 3 5 2 5 4 5 1 5 3 (38).
  GlobalBatchSampler sampler = make(kLengths, budget_config(10, 4));
  EXPECT_EQ(sampler.tokens_per_epoch(), 38);
  EXPECT_EQ(sampler.next().sequences, (Refs{{2, 0, 2}, {1, 0, 3}, {0, 0, 5}}));
  // d3 2 + d4 5 = 7; d5 (4) cut to 3.
  EXPECT_EQ(sampler.next().sequences, (Refs{{3, 0, 2}, {5, 0, 3}, {4, 0, 5}}));
  // d6 5 + d7 1 = 6; d8 (5 after the cut) cut to 4.
  EXPECT_EQ(sampler.next().sequences, (Refs{{7, 0, 1}, {8, 0, 4}, {6, 0, 5}}));
  GlobalBatch b3 = sampler.next();  // d9 alone is partial: epoch 1
  EXPECT_EQ(b3.epoch, 1);
  EXPECT_EQ(b3.sequences, (Refs{{2, 0, 2}, {1, 0, 3}, {0, 0, 5}}));
}

TEST(Sampler, MaxSeqLenSplitContinuesDocuments) {
  SamplerConfig config = budget_config(10, 4);
  config.long_documents = LongDocumentPolicy::kSplit;
  GlobalBatchSampler sampler = make(kLengths, config);
  EXPECT_EQ(sampler.tokens_per_epoch(), 48);
  // d0 5 + d1 3 = 8; d2's first piece (5) cut to 2; d2 continues at offset 2.
  EXPECT_EQ(sampler.next().sequences, (Refs{{2, 0, 2}, {1, 0, 3}, {0, 0, 5}}));
  EXPECT_EQ(sampler.state().consumed_samples, 2);
  EXPECT_EQ(sampler.state().token_offset, 2);
  // d2 [2,7) 5, d2 [7,8) 1, d3 2 -> 8; d4's first piece cut to 2.
  EXPECT_EQ(sampler.next().sequences, (Refs{{2, 7, 1}, {3, 0, 2}, {4, 0, 2}, {2, 2, 5}}));
  // d4 [2,7) 5, d5 4 -> 9; d6 cut to 1.
  EXPECT_EQ(sampler.next().sequences, (Refs{{6, 0, 1}, {5, 0, 4}, {4, 2, 5}}));
  EXPECT_EQ(sampler.state().consumed_samples, 6);
  EXPECT_EQ(sampler.state().token_offset, 1);
  // d6 [1,6) 5, d7 1 -> 6; d8's first piece cut to 4.
  EXPECT_EQ(sampler.next().sequences, (Refs{{7, 0, 1}, {8, 0, 4}, {6, 1, 5}}));
  // d8 [4,9) 5 + d9 3 = 8 < 10: dropped, epoch 1.
  GlobalBatch b4 = sampler.next();
  EXPECT_EQ(b4.epoch, 1);
  EXPECT_EQ(b4.index, 4u);
  EXPECT_EQ(b4.sequences, (Refs{{2, 0, 2}, {1, 0, 3}, {0, 0, 5}}));
}

TEST(Sampler, DocumentCountMode) {
  SamplerConfig config;
  config.mode = BatchMode::kDocumentCount;
  config.global_batch_size = 3;
  config.max_seq_len = 4;
  GlobalBatchSampler sampler = make(kLengths, config);
  // Documents 0-2 cut to 5 tokens: 5 3 5 -> sorted 3, 5 (d0), 5 (d2).
  EXPECT_EQ(sampler.next().sequences, (Refs{{1, 0, 3}, {0, 0, 5}, {2, 0, 5}}));
  EXPECT_EQ(sampler.next().sequences, (Refs{{3, 0, 2}, {5, 0, 4}, {4, 0, 5}}));
  EXPECT_EQ(sampler.next().sequences, (Refs{{7, 0, 1}, {6, 0, 5}, {8, 0, 5}}));
  EXPECT_EQ(sampler.next().epoch, 1);  // d9 alone is partial

  config.long_documents = LongDocumentPolicy::kSplit;
  GlobalBatchSampler split = make(kLengths, config);
  // d2 (8 tokens) becomes [0,5) and [5,8).
  EXPECT_EQ(split.next().sequences, (Refs{{1, 0, 3}, {2, 5, 3}, {0, 0, 5}, {2, 0, 5}}));
}

TEST(Sampler, EmptyDocumentsAreSkipped) {
  std::vector<int32_t> lengths = {0, 4, 0, 6};
  GlobalBatchSampler sampler = make(lengths, budget_config(5, 100));
  // d1 4; d3 (6) cut to 1.
  EXPECT_EQ(sampler.next().sequences, (Refs{{3, 0, 1}, {1, 0, 4}}));
  EXPECT_EQ(sampler.next().epoch, 1);
}

TEST(Sampler, ShuffleIsAFixedPermutation) {
  // Values from an independent SplitMix64 + Fisher-Yates implementation (Python).
  EXPECT_EQ(shuffled_order(10, 42, 0), (std::vector<uint64_t>{4, 6, 7, 0, 9, 5, 1, 2, 3, 8}));
  EXPECT_EQ(shuffled_order(10, 42, 1), (std::vector<uint64_t>{6, 9, 4, 5, 8, 3, 1, 0, 7, 2}));
  EXPECT_EQ(shuffled_order(10, 7, 0), (std::vector<uint64_t>{7, 6, 9, 2, 8, 4, 0, 3, 5, 1}));
  std::vector<uint64_t> big = shuffled_order(1000, 5, 3);
  std::vector<uint64_t> sorted = big;
  std::sort(sorted.begin(), sorted.end());
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
}

TEST(Sampler, ShuffledBatchesFollowTheSeed) {
  SamplerConfig config = budget_config(10, 100);
  config.order = DocumentOrder::kShuffled;
  config.seed = 42;
  GlobalBatchSampler a = make(kLengths, config);
  GlobalBatchSampler b = make(kLengths, config);
  std::vector<GlobalBatch> batches_a = a.take(8);
  EXPECT_EQ(batches_a, b.take(8));
  // Epoch 0 order 4 6 7 0 9 5 1 2 3 8: d4 7 + d6 6 = 13 >= 10, so d6 is cut to 3.
  EXPECT_EQ(batches_a[0].sequences, (Refs{{6, 0, 3}, {4, 0, 7}}));
  // Then d7 1, d0 5 (6), d9 3 (9), d5 cut to 1.
  EXPECT_EQ(batches_a[1].sequences, (Refs{{7, 0, 1}, {5, 0, 1}, {9, 0, 3}, {0, 0, 5}}));
  config.seed = 7;
  GlobalBatchSampler c = make(kLengths, config);
  EXPECT_NE(batches_a, c.take(8));
  // Epochs use different permutations.
  bool epochs_differ = false;
  for (const GlobalBatch& batch : batches_a) {
    if (batch.epoch == 1) epochs_differ |= batch.sequences != batches_a[0].sequences;
  }
  EXPECT_TRUE(epochs_differ);
}

// Runs `total` batches uninterrupted, and for every cut point k: k batches, state -> JSON text
// -> a new sampler, then the remaining batches; both must be identical.
void expect_exact_resume(const SamplerConfig& config, size_t total, std::vector<size_t> cuts) {
  std::vector<GlobalBatch> reference = make(kLengths, config).take(total);
  bool crossed_epoch = false;
  for (size_t cut : cuts) {
    GlobalBatchSampler first = make(kLengths, config);
    first.take(cut);
    std::string text = first.state().to_json().dump();
    auto json = core::parse_json(text, "state.json");
    ASSERT_TRUE(json.is_ok());
    auto state = SamplerState::from_json(*json, "state.json");
    ASSERT_TRUE(state.is_ok()) << state.status().to_string();
    EXPECT_EQ(*state, first.state());
    GlobalBatchSampler second = make(kLengths, config);
    core::Status restored = second.restore(*state);
    ASSERT_TRUE(restored.is_ok()) << restored.to_string();
    std::vector<GlobalBatch> rest = second.take(total - cut);
    for (size_t i = 0; i < rest.size(); ++i) {
      ASSERT_EQ(rest[i], reference[cut + i]) << "cut " << cut << " batch " << cut + i;
    }
    if (cut > 0 && reference[cut - 1].epoch != reference[cut].epoch) crossed_epoch = true;
  }
  EXPECT_TRUE(crossed_epoch) << "no cut point sits on an epoch boundary";
}

TEST(Sampler, ExactResumeSequential) {
  // 3 batches per epoch: cuts mid-epoch (1, 2, 4, 7) and on epoch boundaries (3, 6).
  expect_exact_resume(budget_config(10, 100), 10, {0, 1, 2, 3, 4, 6, 7, 9});
}

TEST(Sampler, ExactResumeShuffledSplit) {
  SamplerConfig config = budget_config(10, 4);
  config.long_documents = LongDocumentPolicy::kSplit;
  config.order = DocumentOrder::kShuffled;
  config.seed = 1234;
  // 4 batches per epoch (48 tokens); cuts inside documents and across epochs.
  expect_exact_resume(config, 13, {1, 2, 3, 4, 5, 8, 9, 12});
}

TEST(Sampler, ExactResumeDocumentCountShuffled) {
  SamplerConfig config;
  config.mode = BatchMode::kDocumentCount;
  config.global_batch_size = 4;
  config.max_seq_len = 6;
  config.order = DocumentOrder::kShuffled;
  config.seed = 9;
  expect_exact_resume(config, 7, {1, 2, 3, 5});
}

TEST(Sampler, BadInput) {
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, budget_config(10, 0)).is_ok());
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, budget_config(0, 100)).is_ok());
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, budget_config(-5, 100)).is_ok());
  // 48 tokens: one batch of 48 is fine, 49 is not; with the cut at 5 tokens only 38 remain.
  EXPECT_TRUE(GlobalBatchSampler::create(kLengths, budget_config(48, 100)).is_ok());
  auto too_big = GlobalBatchSampler::create(kLengths, budget_config(49, 100));
  ASSERT_FALSE(too_big.is_ok());
  EXPECT_NE(too_big.status().message().find("48 usable tokens"), std::string::npos)
      << too_big.status().message();
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, budget_config(39, 4)).is_ok());
  EXPECT_FALSE(GlobalBatchSampler::create({}, budget_config(1, 4)).is_ok());
  std::vector<int32_t> negative = {3, -1};
  EXPECT_FALSE(GlobalBatchSampler::create(negative, budget_config(1, 4)).is_ok());
  SamplerConfig count;
  count.mode = BatchMode::kDocumentCount;
  count.global_batch_size = 11;
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, count).is_ok());
  count.global_batch_size = 0;
  EXPECT_FALSE(GlobalBatchSampler::create(kLengths, count).is_ok());

  // Restoring a state of another data set, or an offset inside a document in truncate mode.
  GlobalBatchSampler sampler = make(kLengths, budget_config(10, 100));
  SamplerState state = sampler.state();
  state.num_documents = 11;
  EXPECT_FALSE(sampler.restore(state).is_ok());
  state = sampler.state();
  state.token_offset = 2;
  EXPECT_FALSE(sampler.restore(state).is_ok());
  state = sampler.state();
  state.consumed_samples = 11;
  EXPECT_FALSE(sampler.restore(state).is_ok());
  auto bad_json = SamplerState::from_json(core::Json{{"epoch", 0}}, "state.json");
  EXPECT_FALSE(bad_json.is_ok());
}

}  // namespace
}  // namespace hydraulis::data
