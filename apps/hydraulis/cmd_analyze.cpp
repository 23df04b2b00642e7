// `hydraulis analyze`: length distribution and global-batch imbalance of a data set (spec.md §2).
// Reads P.bin/P.idx (or a JSON array of lengths), cuts global batches with
// data::GlobalBatchSampler, and writes a text table to stdout, DIR/report.json and the plots
// DIR/length_distribution.* and DIR/batch_imbalance.* (src/data/length_stats.h, src/viz/chart.h;
// docs/analysis.md).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <regex>
#include <span>

#include "apps/hydraulis/commands.h"
#include "core/file.h"
#include "core/json.h"
#include "core/progress.h"
#include "data/indexed_dataset.h"
#include "data/length_stats.h"
#include "data/sampler.h"
#include "viz/chart.h"

namespace hydraulis::apps {

namespace {

constexpr size_t kPlottedBatches = 100;

struct AnalyzeArgs {
  std::string data_prefix;
  std::string lengths_path;
  int64_t global_token_num = 200000;
  int64_t max_seq_len = 32768;
  int num_pipelines = 8;
  std::string out_dir;
  std::string scheme_space;
  std::string scheme = "(1, 8, 1)";
  std::optional<uint64_t> seed;
  int64_t max_batches = 0;  // 0: one whole epoch
  std::string long_documents = "truncate";
};

// Document lengths: owned (lengths file) or borrowed from the memory-mapped data set.
struct LengthsInput {
  std::string name;
  std::vector<int32_t> owned;
  data::IndexedDataset dataset;
  std::span<const int32_t> lengths;
};

core::StatusOr<std::unique_ptr<LengthsInput>> load_lengths(const AnalyzeArgs& args) {
  auto input = std::make_unique<LengthsInput>();
  if (!args.data_prefix.empty()) {
    HYD_ASSIGN_OR_RETURN(input->dataset, data::IndexedDataset::open(args.data_prefix));
    input->lengths = input->dataset.lengths();
    input->name = args.data_prefix;
    return input;
  }
  HYD_ASSIGN_OR_RETURN(core::Json json, core::read_json_file(args.lengths_path));
  if (!json.is_array()) {
    return core::invalid_argument("{}: expected a JSON array of sequence lengths",
                                  args.lengths_path);
  }
  for (size_t i = 0; i < json.size(); ++i) {
    const core::Json& v = json[i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return core::invalid_argument("{}: element {} is {}, expected a length in [0, 2^31)",
                                    args.lengths_path, i, v.dump());
    }
    input->owned.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  input->lengths = input->owned;
  input->name = args.lengths_path;
  return input;
}

// "(tp, pp)" or "(cp, tp, pp)" -> {cp, tp, pp}.
core::StatusOr<std::array<int, 3>> parse_scheme(const std::string& text) {
  static const std::regex kPattern(R"(^\s*\(?\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)?\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, kPattern)) {
    return core::invalid_argument("--scheme '{}' is not '(tp, pp)' or '(cp, tp, pp)'", text);
  }
  if (m[3].matched) return std::array<int, 3>{std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3])};
  return std::array<int, 3>{1, std::stoi(m[1]), std::stoi(m[2])};
}

std::string pct(double share) {
  return fmt::format("{:.1f}%", 100.0 * share);
}

// --- the text table -------------------------------------------------------------------------

std::string distribution_table(const std::string& title, const data::LengthDistribution& d) {
  std::string out = fmt::format("{}\n", title);
  out += fmt::format("  count {}   tokens {}   mean {:.1f}   min {}   max {}\n", d.count,
                     d.total_tokens, d.mean, d.min, d.max);
  out += fmt::format("  p50 {:.0f}   p90 {:.0f}   p99 {:.0f}   p99.9 {:.0f}\n", d.p50, d.p90, d.p99,
                     d.p999);
  out += fmt::format("  {:<8} {:>10} {:>8} {:>12} {:>8} {:>10}\n", "bin", "sequences", "share",
                     "tokens", "share", "attn FLOPs");
  for (const data::BinShare& b : d.bins) {
    out += fmt::format("  {:<8} {:>10} {:>8} {:>12} {:>8} {:>10}\n", b.bin.label, b.sequences,
                       pct(b.sequence_share), b.tokens, pct(b.token_share), pct(b.attention_share));
  }
  return out;
}

std::string imbalance_table(const AnalyzeArgs& args, const data::ImbalanceSummary& s,
                            const data::CostModel& cost) {
  auto spread = [](const data::Spread& x, const char* f) {
    return fmt::format(
        fmt::runtime(std::string("{:") + f + "} / {:" + f + "} / {:" + f + "}   cv {:.2f}"), x.min,
        x.median, x.max, x.cv);
  };
  std::string out =
      fmt::format("Global batches (GLOBAL_TOKEN_NUM {}, MAX_SEQ_LEN {}, {} pipelines)\n",
                  args.global_token_num, args.max_seq_len, args.num_pipelines);
  out += fmt::format("  batches analyzed              {}\n", s.num_batches);
  out += fmt::format("  {:<30}{}\n", "", "min / median / max, coefficient of variation");
  out += fmt::format("  sequences per batch           {}\n", spread(s.sequences, ".0f"));
  out += fmt::format("  longest sequence per batch    {}\n", spread(s.longest, ".0f"));
  out += fmt::format("  cost per batch (ms)           {}\n", spread(s.total_cost, ".1f"));
  out += fmt::format("  padding waste, slots of MAX_SEQ_LEN       {}\n",
                     pct(s.padding_waste_to_max_seq_len));
  out += fmt::format("  padding waste, padded to batch's longest  {}\n",
                     pct(s.padding_waste_to_longest));
  out +=
      fmt::format("  round robin over {} pipelines: max/mean load {:.2f} (mean), {:.2f} (worst)\n",
                  args.num_pipelines, s.round_robin_imbalance_mean, s.round_robin_imbalance_max);
  out += fmt::format("  step time lost to that imbalance: +{} over a balanced split\n",
                     pct(s.step_time_loss));
  out += fmt::format("  cost model: {:.4g}*s^2 + {:.4g}*s + {:.4g} ms  [{}]\n", cost.a, cost.b,
                     cost.c, cost.source);
  return out;
}

// --- plots ---------------------------------------------------------------------------------

// Small builders (designated initializers would trip -Wmissing-field-initializers).
viz::Axis log2_axis(const std::string& label) {
  viz::Axis axis;
  axis.label = label;
  axis.scale = viz::AxisScale::kLog;
  axis.log_base = 2;
  axis.tick_format = viz::TickFormat::kBinary;
  return axis;
}

viz::Axis share_axis(const std::string& label, double max) {
  viz::Axis axis;
  axis.label = label;
  axis.tick_format = viz::TickFormat::kPercent;
  axis.min = 0;
  axis.max = max;
  return axis;
}

viz::Series make_series(const std::string& label, viz::SeriesStyle style) {
  viz::Series series;
  series.label = label;
  series.style = style;
  return series;
}

viz::Series make_series(const std::string& label, viz::SeriesStyle style, viz::Color color) {
  viz::Series series = make_series(label, style);
  series.color = color;
  return series;
}

viz::Chart histogram_chart(const data::LengthDistribution& d) {
  viz::Chart chart;
  chart.title = "Document lengths (log2 buckets)";
  chart.x = log2_axis("tokens");
  chart.y.label = "documents";
  chart.legend = viz::LegendPosition::kNone;
  viz::Series bars;
  bars.style = viz::SeriesStyle::kBars;
  for (const data::Log2Bucket& b : d.histogram) {
    if (b.lo == 0) continue;  // empty documents have no place on a log axis
    bars.x.push_back(static_cast<double>(b.lo));
    bars.x_end.push_back(static_cast<double>(b.hi));
    bars.y.push_back(static_cast<double>(b.count));
  }
  chart.series.push_back(bars);
  chart.notes = {fmt::format("{} documents, mean {:.0f}", d.count, d.mean),
                 fmt::format("p50 {:.0f}, p99 {:.0f}, max {}", d.p50, d.p99, d.max)};
  chart.notes_position = viz::LegendPosition::kTopRight;
  return chart;
}

viz::Chart cdf_chart(std::span<const int32_t> raw) {
  std::vector<int64_t> sorted;
  for (int32_t s : raw) {
    if (s > 0) sorted.push_back(s);
  }
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> prefix(sorted.size() + 1, 0.0);
  for (size_t i = 0; i < sorted.size(); ++i)
    prefix[i + 1] = prefix[i] + static_cast<double>(sorted[i]);
  viz::Chart chart;
  chart.title = "Cumulative share by length";
  chart.x = log2_axis("length <= x (tokens)");
  chart.y = share_axis("share", 1.02);
  chart.legend = viz::LegendPosition::kBottomRight;
  viz::Series docs = make_series("documents", viz::SeriesStyle::kLine);
  viz::Series tokens = make_series("tokens", viz::SeriesStyle::kLine);
  if (sorted.empty()) return chart;
  // 256 geometric points from the shortest to the longest document.
  double lo = static_cast<double>(sorted.front()), hi = static_cast<double>(sorted.back());
  for (int i = 0; i <= 256; ++i) {
    double x = hi > lo ? lo * std::pow(hi / lo, i / 256.0) : lo;
    size_t n = static_cast<size_t>(
        std::upper_bound(sorted.begin(), sorted.end(), static_cast<int64_t>(std::floor(x))) -
        sorted.begin());
    docs.x.push_back(x);
    docs.y.push_back(static_cast<double>(n) / static_cast<double>(sorted.size()));
    tokens.x.push_back(x);
    tokens.y.push_back(prefix[n] / prefix.back());
  }
  chart.series = {docs, tokens};
  return chart;
}

viz::Chart bin_share_chart(const data::LengthDistribution& d) {
  viz::Chart chart;
  chart.title = "Share by length bin";
  chart.y = share_axis("share", 1.0);
  viz::Series seqs = make_series("documents", viz::SeriesStyle::kBars);
  viz::Series tokens = make_series("tokens", viz::SeriesStyle::kBars);
  viz::Series attention = make_series("attention FLOPs (s^2)", viz::SeriesStyle::kBars);
  for (size_t i = 0; i < d.bins.size(); ++i) {
    const data::BinShare& b = d.bins[i];
    chart.x.categories.push_back(b.bin.label);
    for (viz::Series* s : {&seqs, &tokens, &attention}) s->x.push_back(static_cast<double>(i));
    seqs.y.push_back(b.sequence_share);
    tokens.y.push_back(b.token_share);
    attention.y.push_back(b.attention_share);
  }
  chart.x.label = "length bin (tokens, k = 1024)";
  chart.series = {seqs, tokens, attention};
  return chart;
}

viz::Figure length_figure(const std::string& name, const data::LengthDistribution& d,
                          std::span<const int32_t> raw) {
  viz::Figure figure;
  figure.title = fmt::format("Length distribution of {}", name);
  figure.columns = 3;
  figure.panel_width = 520;
  figure.panel_height = 380;
  figure.panels = {histogram_chart(d), cdf_chart(raw), bin_share_chart(d)};
  return figure;
}

viz::Chart lengths_scatter_chart(const std::vector<std::vector<int64_t>>& batches) {
  viz::Chart chart;
  chart.title = "Sequence lengths per global batch";
  chart.x.label = "global batch";
  chart.x.min_tick_step = 1;
  chart.y = log2_axis("sequence length (tokens)");
  chart.legend = viz::LegendPosition::kBottomRight;
  viz::Series all = make_series("sequence", viz::SeriesStyle::kScatter);
  all.alpha = 0.22;
  all.marker_radius = 2.0;
  viz::Series max_line = make_series("", viz::SeriesStyle::kLine, viz::palette_color(3));
  max_line.alpha = 0.6;
  max_line.line_width = 1.0;
  viz::Series max_points =
      make_series("batch max", viz::SeriesStyle::kScatter, viz::palette_color(3));
  max_points.marker_radius = 3.2;
  for (size_t b = 0; b < batches.size(); ++b) {
    for (int64_t s : batches[b]) {
      if (s <= 0) continue;
      all.x.push_back(static_cast<double>(b));
      all.y.push_back(static_cast<double>(s));
    }
    double longest = static_cast<double>(*std::max_element(batches[b].begin(), batches[b].end()));
    if (longest <= 0) continue;
    max_line.x.push_back(static_cast<double>(b));
    max_line.y.push_back(longest);
  }
  max_points.x = max_line.x;
  max_points.y = max_line.y;
  chart.series = {all, max_line, max_points};
  return chart;
}

viz::Chart cost_chart(const std::vector<data::BatchFigures>& figures, int pipelines) {
  viz::Chart chart;
  chart.title = "Cost per global batch (cost model)";
  chart.x.label = "global batch";
  chart.x.min_tick_step = 1;
  chart.y.label = "ms";
  chart.y.min = 0;
  viz::Series total =
      make_series("total cost / N (balanced step)", viz::SeriesStyle::kBars, viz::palette_color(0));
  total.alpha = 0.55;
  total.bar_width = 0.85;
  viz::Series worst = make_series("round-robin step (max pipeline)", viz::SeriesStyle::kLine,
                                  viz::palette_color(3));
  worst.line_width = 1.4;
  for (size_t b = 0; b < figures.size(); ++b) {
    total.x.push_back(static_cast<double>(b));
    total.y.push_back(figures[b].total_cost / pipelines);
    worst.x.push_back(static_cast<double>(b));
    worst.y.push_back(
        *std::max_element(figures[b].pipeline_costs.begin(), figures[b].pipeline_costs.end()));
  }
  double top = 0;
  for (double v : worst.y) top = std::max(top, v);
  chart.y.max = top * 1.3;  // leave room for the legend
  chart.series = {total, worst};
  return chart;
}

viz::Chart ratio_chart(const std::vector<data::BatchFigures>& figures,
                       const data::ImbalanceSummary& summary, int pipelines) {
  viz::Chart chart;
  chart.title = fmt::format("Round robin over {} pipelines: max / mean load", pipelines);
  chart.x.label = "global batch";
  chart.x.min_tick_step = 1;
  chart.y.label = "max / mean pipeline load";
  chart.legend = viz::LegendPosition::kNone;
  viz::Series ratio = make_series("", viz::SeriesStyle::kLine, viz::palette_color(4));
  ratio.line_width = 1.4;
  for (size_t b = 0; b < figures.size(); ++b) {
    ratio.x.push_back(static_cast<double>(b));
    ratio.y.push_back(figures[b].round_robin_imbalance);
  }
  viz::Series balanced = make_series("", viz::SeriesStyle::kLine, viz::palette_color(7));
  balanced.line_width = 1.0;
  balanced.dashed = true;
  balanced.x = {0, static_cast<double>(std::max<size_t>(figures.size(), 2) - 1)};
  balanced.y = {1, 1};
  double top = 1;
  for (double v : ratio.y) top = std::max(top, v);
  chart.y.min = 0.9;
  chart.y.max = 1 + (top - 1) * 1.35 + 0.05;
  chart.series = {ratio, balanced};
  chart.notes = {
      fmt::format("mean {:.2f}, worst {:.2f} (all {} batches)", summary.round_robin_imbalance_mean,
                  summary.round_robin_imbalance_max, summary.num_batches),
      fmt::format("step time +{} vs balanced", pct(summary.step_time_loss))};
  return chart;
}

viz::Chart bin_stack_chart(const std::vector<std::vector<int64_t>>& batches) {
  viz::Chart chart;
  chart.title = "Share of sequences per length bin";
  chart.x.label = "global batch";
  chart.x.min_tick_step = 1;
  chart.y = share_axis("share of sequences", 1.0);
  chart.legend = viz::LegendPosition::kOutsideRight;
  std::vector<data::LengthBin> bins = data::standard_length_bins();
  std::vector<viz::Series> series(bins.size());
  std::vector<double> running(batches.size(), 0.0);
  for (size_t j = 0; j < bins.size(); ++j) {
    series[j].label = bins[j].label;
    series[j].style = viz::SeriesStyle::kBars;
    series[j].bar_width = 0.9;
    series[j].color = viz::palette_color(j);
    for (size_t b = 0; b < batches.size(); ++b) {
      double share = 0;
      for (int64_t s : batches[b]) share += data::standard_bin_index(s) == j ? 1 : 0;
      share /= static_cast<double>(batches[b].size());
      series[j].x.push_back(static_cast<double>(b));
      series[j].y_base.push_back(running[b]);
      running[b] += share;
      series[j].y.push_back(running[b]);
    }
  }
  // Legend top to bottom as the stack reads: longest bin first.
  std::reverse(series.begin(), series.end());
  chart.series = series;
  return chart;
}

viz::Figure imbalance_figure(const std::string& name,
                             const std::vector<std::vector<int64_t>>& batches,
                             const data::ImbalanceReport& report, int pipelines) {
  size_t shown = std::min(batches.size(), kPlottedBatches);
  std::vector<std::vector<int64_t>> first(batches.begin(),
                                          batches.begin() + static_cast<long>(shown));
  std::vector<data::BatchFigures> figures(report.batches.begin(),
                                          report.batches.begin() + static_cast<long>(shown));
  viz::Figure figure;
  figure.title = fmt::format("Global-batch imbalance of {} (first {} batches)", name, shown);
  figure.columns = 2;
  figure.panel_width = 640;
  figure.panel_height = 400;
  figure.panels = {lengths_scatter_chart(first), cost_chart(figures, pipelines),
                   ratio_chart(figures, report.summary, pipelines), bin_stack_chart(first)};
  return figure;
}

// --- the command ---------------------------------------------------------------------------

core::StatusOr<data::CostModel> choose_cost_model(const AnalyzeArgs& args) {
  if (args.scheme_space.empty()) return data::CostModel{};
  HYD_ASSIGN_OR_RETURN(auto scheme, parse_scheme(args.scheme));
  return data::load_cost_model(args.scheme_space, scheme[0], scheme[1], scheme[2]);
}

core::StatusOr<std::vector<std::vector<int64_t>>> sample_batches(const AnalyzeArgs& args,
                                                                 std::span<const int32_t> lengths) {
  data::SamplerConfig config;
  config.global_token_num = args.global_token_num;
  config.max_seq_len = args.max_seq_len;
  config.long_documents = args.long_documents == "split" ? data::LongDocumentPolicy::kSplit
                                                         : data::LongDocumentPolicy::kTruncate;
  config.order = args.seed ? data::DocumentOrder::kShuffled : data::DocumentOrder::kSequential;
  config.seed = args.seed.value_or(0);
  HYD_ASSIGN_OR_RETURN(data::GlobalBatchSampler sampler,
                       data::GlobalBatchSampler::create(lengths, config));
  std::vector<std::vector<int64_t>> batches;
  for (;;) {
    if (args.max_batches > 0 && static_cast<int64_t>(batches.size()) >= args.max_batches) break;
    data::GlobalBatch batch = sampler.next();
    if (batch.epoch > 0) break;  // one epoch: every document once
    batches.push_back(batch.lengths());
  }
  return batches;
}

core::Json report_json(const AnalyzeArgs& args, const LengthsInput& input,
                       const data::CostModel& cost, const data::LengthDistribution& documents,
                       const data::LengthDistribution& sequences,
                       const data::ImbalanceReport& report) {
  core::Json batches = core::Json::array();
  for (const data::BatchFigures& f : report.batches) batches.push_back(data::to_json(f));
  return core::Json{
      {"input", input.name},
      {"config",
       {{"global_token_num", args.global_token_num},
        {"max_seq_len", args.max_seq_len},
        {"num_pipelines", args.num_pipelines},
        {"long_documents", args.long_documents},
        {"order", args.seed ? "shuffled" : "sequential"},
        {"seed", args.seed ? core::Json(*args.seed) : core::Json(nullptr)},
        {"max_batches", args.max_batches}}},
      {"cost_model", {{"a", cost.a}, {"b", cost.b}, {"c", cost.c}, {"source", cost.source}}},
      {"documents", data::to_json(documents)},
      {"batch_sequences", data::to_json(sequences)},
      {"imbalance", data::to_json(report.summary)},
      {"batches", batches}};
}

core::Status run_analyze(const AnalyzeArgs& args) {
  HYD_ASSIGN_OR_RETURN(data::CostModel cost, choose_cost_model(args));
  HYD_ASSIGN_OR_RETURN(std::unique_ptr<LengthsInput> input, load_lengths(args));
  if (input->lengths.empty()) return core::invalid_argument("{} holds no documents", input->name);
  std::vector<int64_t> wide(input->lengths.begin(), input->lengths.end());
  HYD_ASSIGN_OR_RETURN(data::LengthDistribution documents, data::length_distribution(wide));

  HYD_ASSIGN_OR_RETURN(auto batches, sample_batches(args, input->lengths));
  data::ImbalanceConfig config;
  config.max_seq_len = args.max_seq_len;
  config.num_pipelines = args.num_pipelines;
  config.cost = cost;
  HYD_ASSIGN_OR_RETURN(data::ImbalanceReport report, data::analyze_batches(batches, config));
  std::vector<int64_t> all_sequences;
  for (const auto& b : batches) all_sequences.insert(all_sequences.end(), b.begin(), b.end());
  HYD_ASSIGN_OR_RETURN(data::LengthDistribution sequences,
                       data::length_distribution(all_sequences));

  HYD_RETURN_IF_ERROR(core::make_directories(args.out_dir));
  std::string dir = args.out_dir + "/";
  HYD_RETURN_IF_ERROR(core::write_json_file(
      dir + "report.json", report_json(args, *input, cost, documents, sequences, report)));
  HYD_RETURN_IF_ERROR(viz::render_figure(length_figure(input->name, documents, input->lengths),
                                         dir + "length_distribution"));
  HYD_RETURN_IF_ERROR(viz::render_figure(
      imbalance_figure(input->name, batches, report, args.num_pipelines), dir + "batch_imbalance"));

  std::string text = distribution_table(fmt::format("Documents of {}", input->name), documents);
  text += "\n" + distribution_table("Sequences in the analyzed global batches", sequences);
  text += "\n" + imbalance_table(args, report.summary, cost);
  text += fmt::format(
      "\nWrote {0}report.json, {0}length_distribution.{{svg,png}}, "
      "{0}batch_imbalance.{{svg,png}}\n",
      dir);
  std::fputs(text.c_str(), stdout);
  return core::Status::ok();
}

}  // namespace

void add_analyze_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "analyze",
      "Length distribution and global-batch imbalance of a data set (spec.md §2).\n"
      "Cuts the documents into global batches of exactly --global-token-num tokens (one epoch,\n"
      "documents in order unless --seed is given), then reports percentiles, shares per length\n"
      "bin, the spread of the longest sequence and cost per batch, padding waste, and the load\n"
      "imbalance of round-robin dispatch over --num-pipelines. Writes DIR/report.json and the\n"
      "plots DIR/length_distribution.{svg,png} and DIR/batch_imbalance.{svg,png}.");
  auto args = std::make_shared<AnalyzeArgs>();
  auto* source = app->add_option_group("input", "Where the sequence lengths come from");
  source->add_option("--data", args->data_prefix, "Indexed data set prefix P (P.bin + P.idx)");
  source->add_option("--lengths", args->lengths_path, "JSON array of document lengths");
  source->require_option(1);
  app->add_option("--global-token-num", args->global_token_num, "Tokens per global batch")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()));
  app->add_option("--max-seq-len", args->max_seq_len,
                  "Longest sequence is MAX_SEQ_LEN + 1 tokens; longer documents are cut or split")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--num-pipelines", args->num_pipelines,
                  "Data-parallel pipelines for the round-robin imbalance figure")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--out", args->out_dir, "Output directory (created if missing)")->required();
  app->add_option("--scheme-space", args->scheme_space,
                  "Scheme-space JSON whose fit a·s²+b·s+c is the cost model (default: the 7b "
                  "reference's tp=8 pp=1 coefficients)");
  app->add_option("--scheme", args->scheme,
                  "Scheme of --scheme-space: '(tp, pp)' or '(cp, tp, pp)'")
      ->capture_default_str();
  app->add_option("--seed", args->seed, "Shuffle documents with this seed (default: file order)");
  app->add_option("--max-batches", args->max_batches,
                  "Analyze at most this many global batches (default 0: one whole epoch)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--long-documents", args->long_documents,
                  "Documents longer than MAX_SEQ_LEN+1: 'truncate' (original) or 'split'")
      ->capture_default_str()
      ->check(CLI::IsMember({"truncate", "split"}));
  commands.push_back({app, [args] { return run_analyze(*args); }});
}

}  // namespace hydraulis::apps
