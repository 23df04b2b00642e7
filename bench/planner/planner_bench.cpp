// Planner benchmark (spec.md §9): per global batch, planning time and plan quality (estimated step
// time, gap to the lower bound) of our planner, the original method (`--algorithm original`) and
// the exact time-limited CBC formulation (`milp`), on the same batches in one run. Every plan is
// verified before any figure is reported. Emits JSON with the git hash. Docs: bench/README.md,
// docs/planner_assignment.md.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "data/indexed_dataset.h"
#include "data/sampler.h"
#include "planner/batch_planner.h"
#include "planner/plan.h"
#include "planner/reference_lists.h"
#include "planner/simulate.h"

namespace {

using namespace hydraulis;

struct Args {
  std::string scheme_space = "configs/scheme_space/parallel_scheme_space_32b.json";
  std::string bench_case = "64";  // "64" (case study) or "1024" (planner test)
  std::string data;               // indexed dataset prefix
  std::string lengths;            // or: JSON array of per-document token counts
  int64_t global_token_num = 0;   // default by case: 200,000 / 1,600,000
  int64_t max_seq_len = 32768;
  int num_batches = 20;
  int skip_batches = 0;
  double pack_limit_s = 0.5;
  double dispatch_limit_s = 2.0;
  bool no_original = false;
  bool no_milp = false;
  bool with_quick = false;        // also run ours without the packed search ("quick")
  int64_t search_budget = -1;     // packings per strategy of ours' search (-1: library default)
  int threads = 1;
  int64_t shuffle_seed = -1;  // >= 0: documents shuffled per epoch with this seed
  std::string out;
};

struct Outcome {
  bool ok = false;
  std::string error;
  planner::BatchPlan plan;
};

std::string git_hash() {
  std::FILE* pipe = popen("git rev-parse --short HEAD 2>/dev/null", "r");
  if (!pipe) return "unknown";
  char buf[64] = {0};
  std::string out = std::fgets(buf, sizeof(buf), pipe) ? buf : "unknown";
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

double quantile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0);
  return v[std::min(k, v.size() - 1)];
}

core::StatusOr<std::vector<int32_t>> document_lengths(const Args& args) {
  if (!args.data.empty()) {
    HYD_ASSIGN_OR_RETURN(data::IndexedDataset ds, data::IndexedDataset::open(args.data));
    return std::vector<int32_t>(ds.lengths().begin(), ds.lengths().end());
  }
  HYD_ASSIGN_OR_RETURN(core::Json json, core::read_json_file(args.lengths));
  if (!json.is_array()) return core::invalid_argument("{}: expected an array", args.lengths);
  std::vector<int32_t> out;
  for (const auto& v : json) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0) {
      return core::invalid_argument("{}: lengths must be integers >= 0", args.lengths);
    }
    out.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return out;
}

core::Status run(const Args& args) {
  const bool big = args.bench_case == "1024";
  if (!big && args.bench_case != "64") {
    return core::invalid_argument("--case must be 64 or 1024, got {}", args.bench_case);
  }
  const int num_gpus = big ? 1024 : 64;
  const std::string list_text = big ? planner::planner_test_strategy_list()
                                       : planner::case_study_strategy_list();
  const int64_t budget = args.global_token_num > 0 ? args.global_token_num
                                                   : (big ? 1600000 : 200000);
  HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
  HYD_ASSIGN_OR_RETURN(auto strategies, planner::parse_strategy_list(list_text));
  HYD_ASSIGN_OR_RETURN(auto models, planner::build_strategy_models(space, strategies, num_gpus));
  HYD_ASSIGN_OR_RETURN(std::vector<int32_t> docs, document_lengths(args));

  data::SamplerConfig config;
  config.global_token_num = budget;
  config.max_seq_len = args.max_seq_len;
  if (args.shuffle_seed >= 0) {
    config.order = data::DocumentOrder::kShuffled;
    config.seed = static_cast<uint64_t>(args.shuffle_seed);
  }
  HYD_ASSIGN_OR_RETURN(data::GlobalBatchSampler sampler,
                       data::GlobalBatchSampler::create(docs, config));
  std::vector<std::vector<int64_t>> batches;
  for (const auto& batch : sampler.take(static_cast<size_t>(args.skip_batches + args.num_batches))) {
    if (batch.index < static_cast<uint64_t>(args.skip_batches)) continue;
    std::vector<int64_t> lengths;
    for (int64_t n : batch.lengths()) {
      if (n >= 2) lengths.push_back(n - 1);  // training positions (spec.md §1)
    }
    batches.push_back(std::move(lengths));
  }

  struct Algo {
    std::string name;
    planner::PlannerOptions options;
  };
  std::vector<Algo> algos;
  algos.push_back({"ours", {}});
  if (args.search_budget >= 0) algos.back().options.search.pack_budget = args.search_budget;
  if (args.with_quick) {
    Algo a{"quick", {}};
    a.options.search.pack_budget = 0;
    algos.push_back(a);
  }
  if (!args.no_original) {
    Algo a{"original", {}};
    a.options.algorithm = planner::PlannerAlgorithm::kOriginal;
    a.options.pack_time_limit_s = args.pack_limit_s;
    algos.push_back(a);
  }
  if (!args.no_milp) {
    Algo a{"milp", {}};
    a.options.algorithm = planner::PlannerAlgorithm::kMilp;
    a.options.pack_time_limit_s = args.pack_limit_s;
    a.options.dispatch_time_limit_s = args.dispatch_limit_s;
    algos.push_back(a);
  }
  const size_t nb = batches.size();
  std::vector<std::vector<Outcome>> results(algos.size(), std::vector<Outcome>(nb));
  // Warm-up (page faults, CBC's first-call set-up) before anything is timed.
  (void)planner::plan_global_batch(batches[0], models, algos[0].options, 0);
  std::atomic<size_t> next{0};
  std::mutex print;
  auto worker = [&] {
    for (size_t b; (b = next.fetch_add(1)) < nb;) {
      for (size_t a = 0; a < algos.size(); ++a) {
        auto plan = planner::plan_global_batch(batches[b], models, algos[a].options,
                                               static_cast<int64_t>(b));
        Outcome& o = results[a][b];
        if (!plan.is_ok()) {
          o.error = plan.status().message();
          continue;
        }
        core::Status v = planner::verify_plan(*plan, batches[b],
                                              planner::strategy_costs(models[plan->strategy]));
        if (!v.is_ok()) {
          o.error = "verification failed: " + v.message();
          continue;
        }
        o.ok = true;
        o.plan = std::move(*plan);
      }
      std::lock_guard<std::mutex> lock(print);
      std::fprintf(stderr, "batch %zu: %zu seqs", b, batches[b].size());
      for (size_t a = 0; a < algos.size(); ++a) {
        const Outcome& o = results[a][b];
        if (o.ok) {
          std::fprintf(stderr, "  %s %.1f ms (gap %.4f, %.1f ms planning)", algos[a].name.c_str(),
                       o.plan.estimated_ms, o.plan.gap(), o.plan.planning_ms);
        } else {
          std::fprintf(stderr, "  %s failed", algos[a].name.c_str());
        }
      }
      std::fprintf(stderr, "\n");
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, args.threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();

  core::Json json = core::Json::object();
  json["benchmark"] = "planner";
  json["git"] = git_hash();
  json["case"] = big ? "1024-GPU planner test (spec.md §9)" : "64-GPU case study (spec.md §9)";
  json["config"] = {{"num_gpus", num_gpus},
                    {"strategies", big ? "[64x(16,1)], [1x(16,1), 3x(8,1), 238x(4,1), 2x(4,4)]"
                                        : list_text},
                    {"scheme_space", args.scheme_space},
                    {"data", args.data.empty() ? args.lengths : args.data},
                    {"global_token_num", budget},
                    {"max_seq_len", args.max_seq_len},
                    {"num_batches", nb},
                    {"skip_batches", args.skip_batches},
                    {"pack_limit_s", args.pack_limit_s},
                    {"dispatch_limit_s", args.dispatch_limit_s},
                    {"threads", args.threads},
                    {"search_budget", algos[0].options.search.pack_budget}};
  core::Json per_batch = core::Json::array();
  for (size_t b = 0; b < nb; ++b) {
    core::Json row = {{"batch", b},
                      {"sequences", batches[b].size()},
                      {"longest", *std::max_element(batches[b].begin(), batches[b].end())}};
    for (size_t a = 0; a < algos.size(); ++a) {
      const Outcome& o = results[a][b];
      row[algos[a].name] = o.ok ? core::Json{{"estimated_ms", o.plan.estimated_ms},
                                             {"lower_bound_ms", o.plan.lower_bound_ms},
                                             {"gap", o.plan.gap()},
                                             {"planning_ms", o.plan.planning_ms},
                                             {"strategy", o.plan.strategy}}
                                : core::Json{{"error", o.error}};
    }
    per_batch.push_back(std::move(row));
  }
  json["batches"] = std::move(per_batch);
  core::Json summary = core::Json::object();
  std::printf("%s, %zu batches, GLOBAL_TOKEN_NUM %lld (git %s)\n",
              json["case"].get<std::string>().c_str(), nb, static_cast<long long>(budget),
              json["git"].get<std::string>().c_str());
  std::printf("%-10s %-10s %-14s %-14s %-16s %-12s %-12s %s\n", "algorithm", "planned",
              "median_ms", "p99_ms", "mean_step_ms", "median_gap", "max_gap", "ours<=it");
  for (size_t a = 0; a < algos.size(); ++a) {
    std::vector<double> ms, gap, step;
    int planned = 0, ours_le = 0, both = 0;
    for (size_t b = 0; b < nb; ++b) {
      const Outcome& o = results[a][b];
      if (!o.ok) continue;
      ++planned;
      ms.push_back(o.plan.planning_ms);
      gap.push_back(o.plan.gap());
      step.push_back(o.plan.estimated_ms);
      if (results[0][b].ok) {
        ++both;
        ours_le += results[0][b].plan.estimated_ms <= o.plan.estimated_ms * (1 + 1e-9);
      }
    }
    double mean_step = 0;
    for (double s : step) mean_step += s / std::max<size_t>(1, step.size());
    double fraction = both ? static_cast<double>(ours_le) / both : NAN;
    summary[algos[a].name] = {{"planned_batches", planned},
                              {"planning_ms_median", quantile(ms, 0.5)},
                              {"planning_ms_p99", quantile(ms, 0.99)},
                              {"mean_step_ms", mean_step},
                              {"gap_median", quantile(gap, 0.5)},
                              {"gap_max", quantile(gap, 1.0)},
                              {"ours_at_most_this_fraction", fraction}};
    std::printf("%-10s %-10d %-14.2f %-14.2f %-16.1f %-12.5f %-12.5f %.3f\n",
                algos[a].name.c_str(), planned, quantile(ms, 0.5), quantile(ms, 0.99), mean_step,
                quantile(gap, 0.5), quantile(gap, 1.0), fraction);
  }
  json["summary"] = std::move(summary);
  json["all_plans_verified"] = true;  // a failed verification is reported as a failed batch
  if (!args.out.empty()) HYD_RETURN_IF_ERROR(core::write_json_file(args.out, json));
  return core::Status::ok();
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app("Planner benchmark: ours vs the original vs CBC, per global batch");
  app.add_option("--scheme-space", args.scheme_space, "Scheme-space JSON")->capture_default_str();
  app.add_option("--case", args.bench_case, "64 (case study) or 1024 (planner test)")
      ->capture_default_str();
  app.add_option("--data", args.data, "Indexed dataset prefix (document lengths)");
  app.add_option("--lengths", args.lengths, "JSON array of per-document token counts");
  app.add_option("--global-token-num", args.global_token_num, "Default 200,000 / 1,600,000");
  app.add_option("--max-seq-len", args.max_seq_len)->capture_default_str();
  app.add_option("--num-batches", args.num_batches)->capture_default_str();
  app.add_option("--skip-batches", args.skip_batches)->capture_default_str();
  app.add_option("--pack-limit", args.pack_limit_s, "CBC limit per packing solve (s)")
      ->capture_default_str();
  app.add_option("--dispatch-limit", args.dispatch_limit_s, "CBC limit of the dispatch MILP (s)")
      ->capture_default_str();
  app.add_flag("--no-original", args.no_original);
  app.add_flag("--no-milp", args.no_milp);
  app.add_flag("--with-quick", args.with_quick, "Also run ours without its packed search");
  app.add_option("--search-budget", args.search_budget,
                 "Pipeline packings per strategy of ours' search (default: the library's)");
  app.add_option("--threads", args.threads, "Batches planned in parallel (each single-threaded)")
      ->capture_default_str();
  app.add_option("--shuffle-seed", args.shuffle_seed,
                 "Shuffle documents per epoch with this seed (default: file order, epochs repeat)");
  app.add_option("--out", args.out, "JSON report");
  CLI11_PARSE(app, argc, argv);
  if (args.data.empty() == args.lengths.empty()) {
    std::fprintf(stderr, "planner_bench: give exactly one of --data P or --lengths F.json\n");
    return 2;
  }
  hydraulis::core::Status status = run(args);
  if (!status.is_ok()) {
    std::fprintf(stderr, "planner_bench: error: %s\n", status.message().c_str());
    return 1;
  }
  return 0;
}
