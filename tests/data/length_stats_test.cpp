// Tests of the length statistics and imbalance figures on small fixtures whose every figure is
// computed by hand in the comments.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "data/length_stats.h"

namespace hydraulis::data {
namespace {

// Sorted: 256 512 512 1024 1024 2048 4096 8192 16384 32768; sum 66816. In units of 256 the
// lengths are 1 2 2 4 4 8 16 32 64 128 and their squares 1 4 4 16 16 64 256 1024 4096 16384
// (sum 21865).
const std::vector<int64_t> kFixture = {512, 512, 1024, 1024, 2048, 4096, 8192, 16384, 32768, 256};

TEST(LengthStats, Distribution) {
  auto d = length_distribution(kFixture);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->count, 10);
  EXPECT_EQ(d->total_tokens, 66816);
  EXPECT_DOUBLE_EQ(d->mean, 6681.6);
  EXPECT_EQ(d->min, 256);
  EXPECT_EQ(d->max, 32768);
  // Quantile position q·(n−1) = 9q between sorted values.
  EXPECT_DOUBLE_EQ(d->p50, 1536);         // 4.5: 1024 + 0.5·1024
  EXPECT_NEAR(d->p90, 18022.4, 1e-9);     // 8.1: 16384 + 0.1·16384
  EXPECT_NEAR(d->p99, 31293.44, 1e-9);    // 8.91
  EXPECT_NEAR(d->p999, 32620.544, 1e-9);  // 8.991
}

TEST(LengthStats, Log2Histogram) {
  auto d = length_distribution(kFixture);
  ASSERT_TRUE(d.is_ok());
  // Buckets [256,512) ... [32768,65536): counts 1 2 2 1 1 1 1 1.
  ASSERT_EQ(d->histogram.size(), 8u);
  EXPECT_EQ(d->histogram[0].lo, 256);
  EXPECT_EQ(d->histogram[0].hi, 512);
  EXPECT_EQ(d->histogram[7].lo, 32768);
  EXPECT_EQ(d->histogram[7].hi, 65536);
  std::vector<int64_t> counts;
  for (const Log2Bucket& b : d->histogram) counts.push_back(b.count);
  EXPECT_EQ(counts, (std::vector<int64_t>{1, 2, 2, 1, 1, 1, 1, 1}));

  std::vector<int64_t> with_zero = {0, 1, 3};
  auto z = length_distribution(with_zero);
  ASSERT_TRUE(z.is_ok());
  // [0,1): 0 | [1,2): 1 | [2,4): 3.
  ASSERT_EQ(z->histogram.size(), 3u);
  EXPECT_EQ(z->histogram[0].hi, 1);
  EXPECT_EQ(z->histogram[2].lo, 2);
  EXPECT_EQ(z->histogram[2].count, 1);
}

TEST(LengthStats, BinShares) {
  auto d = length_distribution(kFixture);
  ASSERT_TRUE(d.is_ok());
  ASSERT_EQ(d->bins.size(), 7u);
  // 0-1k: 256 512 512 -> 3 sequences, 1280 tokens, squares 1+4+4 = 9 (units 256²).
  EXPECT_EQ(d->bins[0].bin.label, "0-1k");
  EXPECT_EQ(d->bins[0].sequences, 3);
  EXPECT_EQ(d->bins[0].tokens, 1280);
  EXPECT_DOUBLE_EQ(d->bins[0].sequence_share, 0.3);
  EXPECT_DOUBLE_EQ(d->bins[0].token_share, 1280.0 / 66816.0);
  EXPECT_DOUBLE_EQ(d->bins[0].attention_share, 9.0 / 21865.0);
  // 1k-2k: 1024 1024 -> 2, 2048 tokens, squares 32.
  EXPECT_EQ(d->bins[1].sequences, 2);
  EXPECT_DOUBLE_EQ(d->bins[1].attention_share, 32.0 / 21865.0);
  // >=32k: 32768 alone holds half the tokens and 16384/21865 = 74.9% of the attention FLOPs.
  EXPECT_EQ(d->bins[6].bin.label, ">=32k");
  EXPECT_EQ(d->bins[6].sequences, 1);
  EXPECT_DOUBLE_EQ(d->bins[6].token_share, 32768.0 / 66816.0);
  EXPECT_DOUBLE_EQ(d->bins[6].attention_share, 16384.0 / 21865.0);
  EXPECT_EQ(standard_bin_index(1023), 0u);
  EXPECT_EQ(standard_bin_index(1024), 1u);
  EXPECT_EQ(standard_bin_index(32767), 5u);
  EXPECT_EQ(standard_bin_index(1 << 20), 6u);
}

TEST(LengthStats, DistributionBadInput) {
  EXPECT_FALSE(length_distribution(std::vector<int64_t>{}).is_ok());
  EXPECT_FALSE(length_distribution(std::vector<int64_t>{3, -2}).is_ok());
}

// cost(s) = s² + 1, 2 pipelines, MAX_SEQ_LEN 8, batches (ascending):
//   A: 1 2 3 6    costs 2 5 10 37 (54); round robin p0 = 2+10 = 12, p1 = 5+37 = 42; mean 27
//   B: 4 4        costs 17 17 (34);     p0 = 17, p1 = 17; mean 17
//   C: 1 1 1 1 4  costs 2 2 2 2 17 (25); p0 = 2+2+17 = 21, p1 = 4; mean 12.5
ImbalanceConfig fixture_config() {
  ImbalanceConfig config;
  config.max_seq_len = 8;
  config.num_pipelines = 2;
  config.cost.a = 1;
  config.cost.b = 0;
  config.cost.c = 1;
  return config;
}

const std::vector<std::vector<int64_t>> kBatches = {{1, 2, 3, 6}, {4, 4}, {1, 1, 1, 1, 4}};

TEST(Imbalance, PerBatch) {
  auto report = analyze_batches(kBatches, fixture_config());
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  ASSERT_EQ(report->batches.size(), 3u);
  const BatchFigures& a = report->batches[0];
  EXPECT_EQ(a.num_sequences, 4);
  EXPECT_EQ(a.tokens, 12);
  EXPECT_EQ(a.longest, 6);
  EXPECT_DOUBLE_EQ(a.total_cost, 54);
  EXPECT_EQ(a.pipeline_costs, (std::vector<double>{12, 42}));
  EXPECT_DOUBLE_EQ(a.round_robin_imbalance, 42.0 / 27.0);
  EXPECT_DOUBLE_EQ(report->batches[1].round_robin_imbalance, 1.0);
  EXPECT_DOUBLE_EQ(report->batches[2].round_robin_imbalance, 21.0 / 12.5);
}

TEST(Imbalance, Summary) {
  auto report = analyze_batches(kBatches, fixture_config());
  ASSERT_TRUE(report.is_ok());
  const ImbalanceSummary& s = report->summary;
  EXPECT_EQ(s.num_batches, 3);
  // Longest 6 4 4: mean 14/3, population std sqrt(8/9) -> cv = sqrt(2)/7.
  EXPECT_DOUBLE_EQ(s.longest.min, 4);
  EXPECT_DOUBLE_EQ(s.longest.median, 4);
  EXPECT_DOUBLE_EQ(s.longest.max, 6);
  EXPECT_NEAR(s.longest.cv, std::sqrt(2.0) / 7.0, 1e-12);
  // Cost 54 34 25.
  EXPECT_DOUBLE_EQ(s.total_cost.min, 25);
  EXPECT_DOUBLE_EQ(s.total_cost.median, 34);
  EXPECT_NEAR(s.total_cost.mean, 113.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(s.sequences.median, 4);
  // Padding to 8: 11 slots of 8 = 88 computed tokens for 28 real ones -> 60/88.
  EXPECT_NEAR(s.padding_waste_to_max_seq_len, 60.0 / 88.0, 1e-12);
  // Padding to the batch's longest: A 4·6 = 24 (12 pad), B 8 (0), C 5·4 = 20 (12) -> 24/52.
  EXPECT_NEAR(s.padding_waste_to_longest, 24.0 / 52.0, 1e-12);
  // Mean of 14/9, 1, 1.68; max 1.68; step loss (42+17+21)/(27+17+12.5) − 1 = 80/56.5 − 1.
  EXPECT_NEAR(s.round_robin_imbalance_mean, (14.0 / 9.0 + 1.0 + 1.68) / 3.0, 1e-12);
  EXPECT_NEAR(s.round_robin_imbalance_max, 1.68, 1e-12);
  EXPECT_NEAR(s.step_time_loss, 80.0 / 56.5 - 1.0, 1e-12);
}

TEST(Imbalance, SequencesLongerThanTheSlotAreNotPadded) {
  ImbalanceConfig config = fixture_config();
  config.max_seq_len = 4;
  auto report = analyze_batches(kBatches, config);
  ASSERT_TRUE(report.is_ok());
  // Slots max(s, 4): A 4 4 4 6 = 18 (6 pad), B 8 (0), C 20 (12) -> 18/46.
  EXPECT_NEAR(report->summary.padding_waste_to_max_seq_len, 18.0 / 46.0, 1e-12);
}

TEST(Imbalance, BadInput) {
  EXPECT_FALSE(analyze_batches({}, fixture_config()).is_ok());
  EXPECT_FALSE(analyze_batches({{1, 2}, {}}, fixture_config()).is_ok());
  ImbalanceConfig config = fixture_config();
  config.num_pipelines = 0;
  EXPECT_FALSE(analyze_batches(kBatches, config).is_ok());
}

TEST(CostModel, FromSchemeSpace) {
  core::Json space = core::Json::parse(R"({"strategies": [
      {"tp": 8, "pp": 1, "a": 1.5, "b": 2, "c": 3},
      {"cp": 2, "tp": 4, "pp": 1, "a": 4, "b": 5, "c": 6}]})");
  auto m = cost_model_from_scheme_space(space, 1, 8, 1, "space.json");
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_DOUBLE_EQ(m->a, 1.5);
  EXPECT_DOUBLE_EQ(m->cost(10), 1.5 * 100 + 2 * 10 + 3);
  auto cp2 = cost_model_from_scheme_space(space, 2, 4, 1, "space.json");
  ASSERT_TRUE(cp2.is_ok());
  EXPECT_DOUBLE_EQ(cp2->c, 6);
  auto missing = cost_model_from_scheme_space(space, 1, 4, 1, "space.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("(1, 8, 1) (2, 4, 1)"), std::string::npos)
      << missing.status().message();
}

TEST(CostModel, DefaultIsThe7bTp8Scheme) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  std::string path =
      std::string(root ? root : ".") + "/configs/scheme_space/parallel_scheme_space_7b.json";
  auto m = load_cost_model(path, 1, 8, 1);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  CostModel defaults;
  EXPECT_DOUBLE_EQ(m->a, defaults.a);
  EXPECT_DOUBLE_EQ(m->b, defaults.b);
  EXPECT_DOUBLE_EQ(m->c, defaults.c);
}

}  // namespace
}  // namespace hydraulis::data
