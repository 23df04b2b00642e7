// Length statistics and imbalance analysis (spec.md §2): the length distribution of a corpus
// (percentiles, log2 histogram, shares of sequences / tokens / attention FLOPs by length bin)
// and, for global batches, the spread of the longest sequence and of the cost, the padding
// waste of fixed-length batching and the load imbalance of naive round-robin dispatch.
// Pure functions over plain lengths; formulas in docs/analysis.md. Tests:
// tests/data/length_stats_test.cpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/status.h"

namespace hydraulis::data {

// A length bin [lo, hi) in tokens; hi < 0 means unbounded.
struct LengthBin {
  int64_t lo = 0;
  int64_t hi = -1;
  std::string label;  // "0-1k", "1k-2k", ..., ">=32k" (k = 1024)
  bool contains(int64_t length) const { return length >= lo && (hi < 0 || length < hi); }
};

// 0-1k, 1k-2k, 2k-4k, 4k-8k, 8k-16k, 16k-32k, >=32k.
std::vector<LengthBin> standard_length_bins();
// Index of the standard bin holding `length`.
size_t standard_bin_index(int64_t length);

struct BinShare {
  LengthBin bin;
  int64_t sequences = 0;
  int64_t tokens = 0;
  double sequence_share = 0;   // sequences / all sequences
  double token_share = 0;      // tokens / all tokens
  double attention_share = 0;  // Σ s² in the bin / Σ s² overall (attention FLOPs ∝ s²)
};

// Histogram bucket k covers [2^k, 2^(k+1)); lengths of 0 go to a bucket [0, 1).
struct Log2Bucket {
  int64_t lo = 0;
  int64_t hi = 1;
  int64_t count = 0;
};

struct LengthDistribution {
  int64_t count = 0;
  int64_t total_tokens = 0;
  double mean = 0;
  int64_t min = 0;
  int64_t max = 0;
  // Linear interpolation between order statistics (numpy's default): the q-quantile of the
  // sorted lengths x[0..n-1] is x[i] + f·(x[i+1] − x[i]) with i + f = q·(n − 1).
  double p50 = 0, p90 = 0, p99 = 0, p999 = 0;
  std::vector<Log2Bucket> histogram;  // from the min's bucket to the max's, empty ones included
  std::vector<BinShare> bins;         // the standard bins
};

// Fails on an empty input or a negative length.
core::StatusOr<LengthDistribution> length_distribution(std::span<const int64_t> lengths);
double quantile_sorted(std::span<const int64_t> sorted, double q);

// Time of one sequence of s tokens run as its own micro-batch: a·s² + b·s + c (ms).
struct CostModel {
  // Defaults: the 7b reference scheme space's tp=8, pp=1 fit
  // (configs/scheme_space/parallel_scheme_space_7b.json).
  double a = 5.06885473e-07;
  double b = 0.0366182377;
  double c = 44.317477753058256;
  std::string source = "default (7b scheme space, tp=8 pp=1)";
  double cost(int64_t s) const {
    double x = static_cast<double>(s);
    return a * x * x + b * x + c;
  }
};

// a, b, c of the scheme (cp, tp, pp) from a scheme-space JSON (spec.md §3; entries without
// "cp" have cp = 1). `source` names the file in errors.
core::StatusOr<CostModel> cost_model_from_scheme_space(const core::Json& space, int cp, int tp,
                                                       int pp, const std::string& source);
core::StatusOr<CostModel> load_cost_model(const std::string& path, int cp, int tp, int pp);

struct ImbalanceConfig {
  int64_t max_seq_len = 32768;  // fixed-length slot for the padding figure
  int num_pipelines = 8;        // data-parallel pipelines for the round-robin figure
  CostModel cost;
};

// One global batch (lengths in sampler order: ascending).
struct BatchFigures {
  int64_t num_sequences = 0;
  int64_t tokens = 0;
  int64_t longest = 0;
  double total_cost = 0;  // Σ cost(s)
  // Round robin: sequence i goes to pipeline i mod N; a pipeline's load is Σ cost(s).
  std::vector<double> pipeline_costs;
  double round_robin_imbalance = 1;  // max pipeline load / mean pipeline load
};

struct Spread {
  double min = 0, median = 0, max = 0, mean = 0;
  double cv = 0;  // population standard deviation / mean (0 when the mean is 0)
};

struct ImbalanceSummary {
  int64_t num_batches = 0;
  Spread longest;     // the longest sequence of each batch
  Spread total_cost;  // each batch's Σ cost(s)
  Spread sequences;   // sequences per batch
  // Share of computed tokens that are padding, over all batches:
  //  to MAX_SEQ_LEN: Σ (max(s, S) − s) / Σ max(s, S)   (every sequence in a slot of S tokens)
  //  to longest:     Σ (L_b − s) / Σ L_b               (padded to its batch's longest L_b)
  double padding_waste_to_max_seq_len = 0;
  double padding_waste_to_longest = 0;
  double round_robin_imbalance_mean = 1;  // mean over batches of max/mean pipeline load
  double round_robin_imbalance_max = 1;
  // Step time lost to imbalance: a synchronous step takes the slowest pipeline's time, so over
  // all batches Σ max_b / Σ mean_b − 1 is how much longer the run is than a balanced one.
  double step_time_loss = 0;
};

struct ImbalanceReport {
  std::vector<BatchFigures> batches;
  ImbalanceSummary summary;
};

BatchFigures batch_figures(std::span<const int64_t> lengths, const ImbalanceConfig& config);
Spread spread_of(std::vector<double> values);
// Fails when there is no batch, a batch is empty, or num_pipelines < 1.
core::StatusOr<ImbalanceReport> analyze_batches(const std::vector<std::vector<int64_t>>& batches,
                                                const ImbalanceConfig& config);

core::Json to_json(const LengthDistribution& distribution);
core::Json to_json(const ImbalanceSummary& summary);
core::Json to_json(const BatchFigures& batch);

}  // namespace hydraulis::data
