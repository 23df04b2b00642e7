// `hydraulis plan`: plans every global batch of a --batches file (or sampled from --data P) (strategy choice, dispatch,
// packing; src/planner/batch_planner.h), verifies each plan, writes plan.jsonl atomically (form in
// design.md) and prints a per-batch summary. Docs: docs/planner_assignment.md.
#include <cstdio>
#include <string>

#include "apps/hydraulis/batch_source.h"
#include "apps/hydraulis/commands.h"
#include "planner/batch_planner.h"
#include "planner/plan.h"
#include "planner/simulate.h"
#include "planner/strategy.h"

namespace hydraulis::apps {
namespace {

struct PlanArgs {
  std::string scheme_space;
  int num_gpus = 0;
  std::string strategies;
  BatchSourceArgs source;
  int method = 4;
  std::string algorithm = "ours";
  uint64_t seed = 0;
  int64_t max_seq_len = 0;
  int strategy_index = 0;
  double pack_time_limit_s = 0.5;
  std::string output;
};

core::Status run_plan(const PlanArgs& args) {
  if (args.num_gpus <= 0) {
    return core::invalid_argument("--num-gpus must be positive, got {}", args.num_gpus);
  }
  if (args.max_seq_len < 0) {
    return core::invalid_argument("--max-seq-len must be positive, got {}", args.max_seq_len);
  }
  HYD_ASSIGN_OR_RETURN(planner::BatchingMethod method, planner::batching_method_from_int(args.method));
  HYD_ASSIGN_OR_RETURN(planner::PlannerAlgorithm algorithm,
                       planner::planner_algorithm_from_string(args.algorithm));
  HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::Strategy> strategies,
                       planner::parse_strategy_list(args.strategies));
  HYD_ASSIGN_OR_RETURN(std::vector<planner::StrategyModel> models,
                       planner::build_strategy_models(space, strategies, args.num_gpus));
  BatchSourceArgs source = args.source;
  if (args.max_seq_len > 0) source.max_seq_len = args.max_seq_len;  // sampling cap for --data
  HYD_ASSIGN_OR_RETURN(auto batches, load_global_batches(source));

  planner::PlannerOptions options;
  options.method = method;
  options.algorithm = algorithm;
  options.seed = args.seed;
  options.max_seq_len = args.max_seq_len;
  options.fixed_strategy = args.strategy_index;
  options.pack_time_limit_s = args.pack_time_limit_s;

  std::printf("planning %zu global batches: method %d, algorithm %s, %zu strategies\n",
              batches.size(), args.method, args.algorithm.c_str(), strategies.size());
  for (size_t k = 0; k < models.size(); ++k) {
    std::printf("  strategy %zu: %s (largest micro-batch %lld tokens)\n", k,
                planner::summarize_strategy(strategies[k]).c_str(),
                static_cast<long long>(models[k].largest_max_tokens()));
  }
  std::printf("%-6s %-9s %-9s %-13s %-15s %-8s %s\n", "batch", "seqs", "strategy",
              "estimated_ms", "lower_bound_ms", "gap", "planning_ms");
  std::vector<planner::BatchPlan> plans;
  double total_ms = 0, total_planning = 0;
  int64_t total_tokens = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    HYD_ASSIGN_OR_RETURN(planner::BatchPlan plan,
                         planner::plan_global_batch(batches[b], models, options,
                                                    static_cast<int64_t>(b)));
    core::Status ok = planner::verify_plan(plan, batches[b],
                                           planner::strategy_costs(models[plan.strategy]));
    if (!ok.is_ok()) return ok.with_context("internal: the plan failed verification");
    std::printf("%-6zu %-9zu %-9d %-13.1f %-15.1f %-8.4f %.2f\n", b, batches[b].size(),
                plan.strategy, plan.estimated_ms, plan.lower_bound_ms, plan.gap(),
                plan.planning_ms);
    total_ms += plan.estimated_ms;
    total_planning += plan.planning_ms;
    for (int64_t s : batches[b]) total_tokens += s;
    plans.push_back(std::move(plan));
  }
  HYD_RETURN_IF_ERROR(planner::write_plan_jsonl(args.output, plans));
  std::printf("total: %lld tokens in %.1f ms estimated (%.0f tokens/s); planning %.1f ms; "
              "wrote %s\n",
              static_cast<long long>(total_tokens), total_ms,
              total_ms > 0 ? total_tokens / total_ms * 1000.0 : 0.0, total_planning,
              args.output.c_str());
  return core::Status::ok();
}

}  // namespace

void add_plan_command(CLI::App& root, CommandList& commands) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* app = root.add_subcommand(
      "plan",
      "Plan global batches: choose a strategy, dispatch sequences to pipelines and pack "
      "micro-batches; writes plan.jsonl (one line per batch)");
  app->add_option("--scheme-space", args->scheme_space, "Scheme-space JSON")->required();
  app->add_option("--num-gpus", args->num_gpus, "Number of GPUs every strategy uses")->required();
  app->add_option("--strategies", args->strategies,
                  "Strategy list, e.g. \"[[(1, 16, 1), (1, 16, 1)], [(16, 1), (8, 2)]]\"")
      ->required();
  add_batch_source_options(app, &args->source);
  app->add_option("--method", args->method,
                  "Batching method: 0 padding, 1 packing, 3 dispatch + greedy packing, "
                  "4 dispatch + fine-grained packing")
      ->capture_default_str();
  app->add_option("--algorithm", args->algorithm,
                  "ours | original (randomized greedy + CBC packing) | milp (CBC dispatch)")
      ->capture_default_str();
  app->add_option("--seed", args->seed, "First shuffle seed of the original's dispatch")
      ->capture_default_str();
  app->add_option("--max-seq-len", args->max_seq_len,
                  "Pad length (method 0) / greedy packing cap (1, 3); default: the batch's "
                  "longest sequence rounded up to 128");
  app->add_option("--strategy-index", args->strategy_index,
                  "The one strategy of methods 0 and 1")
      ->capture_default_str();
  app->add_option("--pack-time-limit", args->pack_time_limit_s,
                  "CBC time limit per packing solve in seconds (original, milp)")
      ->capture_default_str();
  app->add_option("--output", args->output, "plan.jsonl to write")->required();
  commands.push_back({app, [args] { return run_plan(*args); }});
}

}  // namespace hydraulis::apps
