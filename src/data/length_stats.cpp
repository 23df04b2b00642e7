// Length distribution, cost-model lookup and per-batch imbalance figures (formulas in
// length_stats.h and docs/analysis.md). Tests: tests/data/length_stats_test.cpp.
#include "data/length_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "core/check.h"

namespace hydraulis::data {

std::vector<LengthBin> standard_length_bins() {
  return {{0, 1024, "0-1k"},     {1024, 2048, "1k-2k"},   {2048, 4096, "2k-4k"},
          {4096, 8192, "4k-8k"}, {8192, 16384, "8k-16k"}, {16384, 32768, "16k-32k"},
          {32768, -1, ">=32k"}};
}

size_t standard_bin_index(int64_t length) {
  if (length < 1024) return 0;
  // 1024 · 2^(k−1) ≤ length < 1024 · 2^k  ->  bin k, capped at the last bin.
  auto k = static_cast<size_t>(std::bit_width(static_cast<uint64_t>(length) >> 10));
  return std::min<size_t>(k, 6);
}

double quantile_sorted(std::span<const int64_t> sorted, double q) {
  HYD_CHECK(!sorted.empty(), "quantile of an empty list");
  double pos = q * static_cast<double>(sorted.size() - 1);
  auto i = static_cast<size_t>(std::floor(pos));
  if (i + 1 >= sorted.size()) return static_cast<double>(sorted.back());
  double f = pos - static_cast<double>(i);
  return static_cast<double>(sorted[i]) + f * static_cast<double>(sorted[i + 1] - sorted[i]);
}

core::StatusOr<LengthDistribution> length_distribution(std::span<const int64_t> lengths) {
  if (lengths.empty()) return core::invalid_argument("length distribution of an empty data set");
  std::vector<int64_t> sorted(lengths.begin(), lengths.end());
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() < 0) {
    return core::invalid_argument("negative sequence length {}", sorted.front());
  }
  LengthDistribution d;
  d.count = static_cast<int64_t>(sorted.size());
  for (int64_t s : sorted) d.total_tokens += s;
  d.mean = static_cast<double>(d.total_tokens) / static_cast<double>(d.count);
  d.min = sorted.front();
  d.max = sorted.back();
  d.p50 = quantile_sorted(sorted, 0.50);
  d.p90 = quantile_sorted(sorted, 0.90);
  d.p99 = quantile_sorted(sorted, 0.99);
  d.p999 = quantile_sorted(sorted, 0.999);

  // log2 buckets: 0 -> [0, 1); s >= 1 -> k = floor(log2 s), [2^k, 2^(k+1)).
  auto bucket_of = [](int64_t s) -> int {
    return s == 0 ? -1 : std::bit_width(static_cast<uint64_t>(s)) - 1;
  };
  int k0 = bucket_of(d.min), k1 = bucket_of(d.max);
  for (int k = k0; k <= k1; ++k) {
    Log2Bucket b;
    b.lo = k < 0 ? 0 : int64_t{1} << k;
    b.hi = k < 0 ? 1 : int64_t{1} << (k + 1);
    d.histogram.push_back(b);
  }
  for (int64_t s : sorted) d.histogram[static_cast<size_t>(bucket_of(s) - k0)].count += 1;

  std::vector<LengthBin> bins = standard_length_bins();
  std::vector<double> squares(bins.size(), 0.0);
  double all_squares = 0;
  for (const LengthBin& bin : bins) d.bins.push_back(BinShare{bin});
  for (int64_t s : sorted) {
    size_t i = standard_bin_index(s);
    double sq = static_cast<double>(s) * static_cast<double>(s);
    d.bins[i].sequences += 1;
    d.bins[i].tokens += s;
    squares[i] += sq;
    all_squares += sq;
  }
  for (size_t i = 0; i < bins.size(); ++i) {
    BinShare& b = d.bins[i];
    b.sequence_share = static_cast<double>(b.sequences) / static_cast<double>(d.count);
    b.token_share = d.total_tokens > 0
                        ? static_cast<double>(b.tokens) / static_cast<double>(d.total_tokens)
                        : 0;
    b.attention_share = all_squares > 0 ? squares[i] / all_squares : 0;
  }
  return d;
}

core::StatusOr<CostModel> cost_model_from_scheme_space(const core::Json& space, int cp, int tp,
                                                       int pp, const std::string& source) {
  HYD_ASSIGN_OR_RETURN(const core::Json* strategies, core::json_field(space, "strategies", source));
  if (!strategies->is_array()) {
    return core::invalid_argument("{}: 'strategies' must be an array", source);
  }
  std::vector<std::string> available;
  for (size_t i = 0; i < strategies->size(); ++i) {
    const core::Json& entry = (*strategies)[i];
    std::string where = fmt::format("{}: strategies[{}]", source, i);
    if (!entry.is_object()) return core::invalid_argument("{} must be an object", where);
    int64_t entry_cp = 1;
    if (entry.contains("cp")) {
      HYD_ASSIGN_OR_RETURN(entry_cp, core::json_integer(entry, "cp", where));
    }
    HYD_ASSIGN_OR_RETURN(int64_t entry_tp, core::json_integer(entry, "tp", where));
    HYD_ASSIGN_OR_RETURN(int64_t entry_pp, core::json_integer(entry, "pp", where));
    available.push_back(fmt::format("({}, {}, {})", entry_cp, entry_tp, entry_pp));
    if (entry_cp != cp || entry_tp != tp || entry_pp != pp) continue;
    CostModel model;
    HYD_ASSIGN_OR_RETURN(model.a, core::json_number(entry, "a", where));
    HYD_ASSIGN_OR_RETURN(model.b, core::json_number(entry, "b", where));
    HYD_ASSIGN_OR_RETURN(model.c, core::json_number(entry, "c", where));
    model.source = fmt::format("{} scheme (cp, tp, pp) = ({}, {}, {})", source, cp, tp, pp);
    return model;
  }
  std::string list;
  for (const auto& s : available) list += (list.empty() ? "" : " ") + s;
  return core::not_found("{}: no scheme (cp, tp, pp) = ({}, {}, {}); schemes in the file: {}",
                         source, cp, tp, pp, list);
}

core::StatusOr<CostModel> load_cost_model(const std::string& path, int cp, int tp, int pp) {
  HYD_ASSIGN_OR_RETURN(core::Json space, core::read_json_file(path));
  return cost_model_from_scheme_space(space, cp, tp, pp, path);
}

BatchFigures batch_figures(std::span<const int64_t> lengths, const ImbalanceConfig& config) {
  HYD_CHECK(config.num_pipelines >= 1, "num_pipelines = {}", config.num_pipelines);
  BatchFigures f;
  f.num_sequences = static_cast<int64_t>(lengths.size());
  f.pipeline_costs.assign(static_cast<size_t>(config.num_pipelines), 0.0);
  for (size_t i = 0; i < lengths.size(); ++i) {
    int64_t s = lengths[i];
    double c = config.cost.cost(s);
    f.tokens += s;
    f.longest = std::max(f.longest, s);
    f.total_cost += c;
    f.pipeline_costs[i % f.pipeline_costs.size()] += c;
  }
  double mean = f.total_cost / static_cast<double>(config.num_pipelines);
  double max = *std::max_element(f.pipeline_costs.begin(), f.pipeline_costs.end());
  f.round_robin_imbalance = mean > 0 ? max / mean : 1.0;
  return f;
}

Spread spread_of(std::vector<double> values) {
  Spread s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  size_t n = values.size();
  s.median = n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(n);
  double var = 0;
  for (double v : values) var += (v - s.mean) * (v - s.mean);
  var /= static_cast<double>(n);
  s.cv = s.mean != 0 ? std::sqrt(var) / s.mean : 0;
  return s;
}

core::StatusOr<ImbalanceReport> analyze_batches(const std::vector<std::vector<int64_t>>& batches,
                                                const ImbalanceConfig& config) {
  if (batches.empty()) return core::invalid_argument("imbalance analysis needs at least one batch");
  if (config.num_pipelines < 1) {
    return core::invalid_argument("num_pipelines must be >= 1, got {}", config.num_pipelines);
  }
  if (config.max_seq_len <= 0) {
    return core::invalid_argument("max_seq_len must be > 0, got {}", config.max_seq_len);
  }
  ImbalanceReport report;
  std::vector<double> longest, cost, sequences;
  double slot_tokens = 0, slot_padding = 0, longest_tokens = 0, longest_padding = 0;
  double sum_max = 0, sum_mean = 0, sum_ratio = 0, max_ratio = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const std::vector<int64_t>& lengths = batches[b];
    if (lengths.empty()) return core::invalid_argument("batch {} has no sequences", b);
    for (int64_t s : lengths) {
      if (s < 0) return core::invalid_argument("batch {} has a negative length {}", b, s);
    }
    BatchFigures f = batch_figures(lengths, config);
    for (int64_t s : lengths) {
      double slot = static_cast<double>(std::max(s, config.max_seq_len));
      slot_tokens += slot;
      slot_padding += slot - static_cast<double>(s);
      longest_tokens += static_cast<double>(f.longest);
      longest_padding += static_cast<double>(f.longest - s);
    }
    double max_load = *std::max_element(f.pipeline_costs.begin(), f.pipeline_costs.end());
    sum_max += max_load;
    sum_mean += f.total_cost / config.num_pipelines;
    sum_ratio += f.round_robin_imbalance;
    max_ratio = std::max(max_ratio, f.round_robin_imbalance);
    longest.push_back(static_cast<double>(f.longest));
    cost.push_back(f.total_cost);
    sequences.push_back(static_cast<double>(f.num_sequences));
    report.batches.push_back(std::move(f));
  }
  ImbalanceSummary& s = report.summary;
  s.num_batches = static_cast<int64_t>(batches.size());
  s.longest = spread_of(longest);
  s.total_cost = spread_of(cost);
  s.sequences = spread_of(sequences);
  s.padding_waste_to_max_seq_len = slot_tokens > 0 ? slot_padding / slot_tokens : 0;
  s.padding_waste_to_longest = longest_tokens > 0 ? longest_padding / longest_tokens : 0;
  s.round_robin_imbalance_mean = sum_ratio / static_cast<double>(batches.size());
  s.round_robin_imbalance_max = max_ratio;
  s.step_time_loss = sum_mean > 0 ? sum_max / sum_mean - 1 : 0;
  return report;
}

core::Json to_json(const LengthDistribution& d) {
  core::Json histogram = core::Json::array();
  for (const Log2Bucket& b : d.histogram) {
    histogram.push_back({{"lo", b.lo}, {"hi", b.hi}, {"count", b.count}});
  }
  core::Json bins = core::Json::array();
  for (const BinShare& b : d.bins) {
    bins.push_back({{"bin", b.bin.label},
                    {"lo", b.bin.lo},
                    {"hi", b.bin.hi < 0 ? core::Json(nullptr) : core::Json(b.bin.hi)},
                    {"sequences", b.sequences},
                    {"tokens", b.tokens},
                    {"sequence_share", b.sequence_share},
                    {"token_share", b.token_share},
                    {"attention_share", b.attention_share}});
  }
  return core::Json{{"count", d.count}, {"total_tokens", d.total_tokens},
                    {"mean", d.mean},   {"min", d.min},
                    {"max", d.max},     {"p50", d.p50},
                    {"p90", d.p90},     {"p99", d.p99},
                    {"p99_9", d.p999},  {"log2_histogram", histogram},
                    {"bins", bins}};
}

namespace {
core::Json spread_json(const Spread& s) {
  return core::Json{
      {"min", s.min}, {"median", s.median}, {"max", s.max}, {"mean", s.mean}, {"cv", s.cv}};
}
}  // namespace

core::Json to_json(const ImbalanceSummary& s) {
  return core::Json{{"num_batches", s.num_batches},
                    {"longest", spread_json(s.longest)},
                    {"total_cost_ms", spread_json(s.total_cost)},
                    {"sequences_per_batch", spread_json(s.sequences)},
                    {"padding_waste_to_max_seq_len", s.padding_waste_to_max_seq_len},
                    {"padding_waste_to_longest", s.padding_waste_to_longest},
                    {"round_robin_imbalance_mean", s.round_robin_imbalance_mean},
                    {"round_robin_imbalance_max", s.round_robin_imbalance_max},
                    {"step_time_loss", s.step_time_loss}};
}

core::Json to_json(const BatchFigures& f) {
  return core::Json{{"sequences", f.num_sequences},
                    {"tokens", f.tokens},
                    {"longest", f.longest},
                    {"total_cost_ms", f.total_cost},
                    {"pipeline_costs_ms", f.pipeline_costs},
                    {"round_robin_imbalance", f.round_robin_imbalance}};
}

}  // namespace hydraulis::data
