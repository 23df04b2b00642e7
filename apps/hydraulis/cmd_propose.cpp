// `hydraulis propose`: proposes a strategy list for a corpus from its length histogram with the
// dynamic program of spec.md §5 (library: src/planner/proposal.h; docs: docs/planner.md).
// Prints the list in the original text syntax, a table with each strategy's estimated step time,
// and (with --out) writes the full result as JSON, atomically.
#include <chrono>
#include <cstdio>
#include <string>

#include "apps/hydraulis/commands.h"
#include "core/json.h"
#include "data/indexed_dataset.h"
#include "planner/proposal.h"

namespace hydraulis::apps {
namespace {

struct ProposeArgs {
  std::string scheme_space;
  int num_gpus = 0;
  std::string data;
  std::string lengths;
  double global_token_num = 0;
  int64_t max_seq_len = 0;
  int n_step = 1;
  int64_t s_step = 128;
  std::string optimizer_layout;
  std::string capacity = "longest";
  std::string out;
};

// Sequence lengths in training positions: a document of n tokens gives min(n, S + 1) − 1
// (spec.md §1); S defaults to the longest document minus one.
core::StatusOr<std::vector<int64_t>> lengths_from_dataset(const std::string& prefix,
                                                          int64_t max_seq_len) {
  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset, data::IndexedDataset::open(prefix));
  std::vector<int64_t> out;
  out.reserve(dataset.num_sequences());
  for (int32_t n : dataset.lengths()) {
    int64_t tokens = n;
    if (max_seq_len > 0) tokens = std::min<int64_t>(tokens, max_seq_len + 1);
    if (tokens >= 2) out.push_back(tokens - 1);
  }
  if (out.empty()) {
    return core::invalid_argument("{}: no sequence with at least 2 tokens", prefix);
  }
  return out;
}

core::StatusOr<std::vector<int64_t>> lengths_from_json(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(core::Json json, core::read_json_file(path));
  if (!json.is_array() || json.empty()) {
    return core::invalid_argument("{}: expected a non-empty JSON array of sequence lengths", path);
  }
  std::vector<int64_t> out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    const core::Json& v = json[i];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      return core::invalid_argument("{}: element {} is {}; every length must be an integer >= 1",
                                    path, i, v.dump());
    }
    out.push_back(v.get<int64_t>());
  }
  return out;
}

// "dp,tp,pp" or "(dp, tp, pp)".
core::StatusOr<planner::OptimizerLayout> parse_layout(const std::string& text) {
  std::string digits;
  for (char c : text) digits += (c == '(' || c == ')' || c == ',') ? ' ' : c;
  planner::OptimizerLayout layout;
  char extra = 0;
  if (std::sscanf(digits.c_str(), "%d %d %d %c", &layout.dp, &layout.tp, &layout.pp, &extra) != 3) {
    return core::invalid_argument(
        "--optimizer-layout \"{}\": expected three integers \"dp,tp,pp\", e.g. \"8,4,1\"", text);
  }
  return layout;
}

core::Status run_propose(const ProposeArgs& args) {
  if (args.data.empty() == args.lengths.empty()) {
    return core::invalid_argument("give exactly one of --data P or --lengths F.json");
  }
  if (args.global_token_num < 0) {
    return core::invalid_argument("--global-token-num must be positive, got {}",
                                  args.global_token_num);
  }
  HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
  planner::ProposalOptions options;
  options.num_gpus = args.num_gpus;
  options.n_step = args.n_step;
  options.s_step = args.s_step;
  options.max_seq_len = args.max_seq_len;
  if (args.capacity == "longest") {
    options.capacity = planner::CapacityRule::kLongestLength;
  } else if (args.capacity == "range-end") {
    options.capacity = planner::CapacityRule::kRangeEnd;
  } else {
    return core::invalid_argument("--capacity-rule \"{}\": use 'longest' or 'range-end'",
                                  args.capacity);
  }
  if (!args.optimizer_layout.empty()) {
    HYD_ASSIGN_OR_RETURN(options.layout, parse_layout(args.optimizer_layout));
  }
  std::vector<int64_t> lengths;
  if (!args.data.empty()) {
    HYD_ASSIGN_OR_RETURN(lengths, lengths_from_dataset(args.data, args.max_seq_len));
  } else {
    HYD_ASSIGN_OR_RETURN(lengths, lengths_from_json(args.lengths));
  }
  planner::LengthHistogram histogram = planner::make_length_histogram(lengths);
  if (options.max_seq_len > 0) histogram = planner::clip_histogram(histogram, options.max_seq_len);
  if (args.global_token_num > 0) {
    histogram = planner::scale_to_global_batch(histogram, args.global_token_num);
  }

  auto start = std::chrono::steady_clock::now();
  HYD_ASSIGN_OR_RETURN(planner::Proposal proposal,
                       planner::propose_strategies(space, histogram, options));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  core::Json json = planner::proposal_to_json(proposal);
  json["input"] = core::Json{{"scheme_space", args.scheme_space},
                             {"num_gpus", args.num_gpus},
                             {"sequences", lengths.size()},
                             {"distinct_lengths", histogram.lengths.size()},
                             {"global_token_num", args.global_token_num},
                             {"max_seq_len", args.max_seq_len},
                             {"n_step", args.n_step},
                             {"s_step", args.s_step},
                             {"capacity_rule", args.capacity}};
  json["proposal_seconds"] = seconds;
  if (!args.out.empty()) HYD_RETURN_IF_ERROR(core::write_json_file(args.out, json));

  const planner::OptimizerLayout& l = proposal.layout;
  std::printf(
      "optimizer layout (os_dp, os_tp, os_pp) = (%d, %d, %d); %zu sequences, %s\n", l.dp, l.tp,
      l.pp, lengths.size(),
      args.global_token_num > 0 ? "counts scaled to one global batch" : "whole-corpus counts");
  std::printf("max tokens per micro-batch:");
  for (const planner::SchemeCapacity& c : proposal.capacities) {
    std::printf(" (%d,%d,%d)=%lld", c.scheme.cp, c.scheme.tp, c.scheme.pp,
                static_cast<long long>(c.max_tokens));
  }
  std::printf("\n%-4s %-14s %-14s %-12s %s\n", "#", "estimated_ms", "covered_len", "sequences",
              "strategy");
  for (size_t i = 0; i < proposal.strategies.size(); ++i) {
    const planner::ProposedStrategy& p = proposal.strategies[i];
    std::printf("%-4zu %-14.3f %-14lld %-12.6g %s\n", i, p.estimated_ms,
                static_cast<long long>(p.covered_length), p.covered_sequences,
                planner::summarize_strategy(p.strategy).c_str());
  }
  std::printf("strategy list:\n%s\n", json["strategy_list"].get<std::string>().c_str());
  core::Json as_json = core::Json::array();
  for (const core::Json& s : json["strategies"]) as_json.push_back(s["pipelines"]);
  std::printf("strategy list (JSON, [cp, tp, pp] per pipeline):\n%s\n", as_json.dump().c_str());
  std::printf("proposal took %.3f s (%lld DP candidates)\n", seconds,
              static_cast<long long>(proposal.dp_cells));
  if (!args.out.empty()) std::printf("wrote %s\n", args.out.c_str());
  return core::Status::ok();
}

}  // namespace

void add_propose_command(CLI::App& root, CommandList& commands) {
  auto args = std::make_shared<ProposeArgs>();
  CLI::App* app = root.add_subcommand(
      "propose",
      "Propose a strategy list for a corpus: a dynamic program over GPUs and sequence length\n"
      "splits the length histogram into ranges, each served by replicas of one scheme\n"
      "(docs/planner.md). The first strategy is homogeneous and fixes the optimizer layout.");
  app->add_option("--scheme-space", args->scheme_space, "Scheme space JSON (cost/memory model)")
      ->required();
  app->add_option("--num-gpus", args->num_gpus, "GPUs every strategy uses (N)")->required();
  app->add_option("--data", args->data, "Indexed dataset prefix P (P.bin + P.idx)");
  app->add_option("--lengths", args->lengths,
                  "JSON array of sequence lengths (training positions), instead of --data");
  app->add_option("--global-token-num", args->global_token_num,
                  "Scale counts to one global batch of T tokens (default: whole-corpus counts, "
                  "as the original)");
  app->add_option("--max-seq-len", args->max_seq_len,
                  "Longest sequence S; longer ones are cut to S (default: the longest)");
  app->add_option("--n-step", args->n_step, "GPU-count step of the DP (N_STEP)")->default_val(1);
  app->add_option("--s-step", args->s_step, "Length step of the DP (S_STEP)")->default_val(128);
  app->add_option("--optimizer-layout", args->optimizer_layout,
                  "\"dp,tp,pp\" of the first, homogeneous strategy (default: chosen by the DP)");
  app->add_option("--capacity-rule", args->capacity,
                  "'longest' (a scheme serves a length range if it holds its longest length) or "
                  "'range-end' (original: it must hold the range's upper grid point)")
      ->default_val("longest");
  app->add_option("--out", args->out, "Write the proposal as JSON here");
  commands.push_back({app, [args] { return run_propose(*args); }});
}

}  // namespace hydraulis::apps
