// `hydraulis build-space`: fits the scheme-space JSON (spec.md §3, docs/planner.md) from one or
// more `hydraulis profile` outputs (planner/space_fit.h, docs/profiling.md) and prints the fit
// quality per scheme (R², max relative error).
#include <cstdio>
#include <memory>

#include "apps/hydraulis/commands.h"
#include "planner/space_fit.h"

namespace hydraulis::apps {

namespace {

struct BuildSpaceArgs {
  std::vector<std::string> profiles;
  std::string out;
  double gpu_memory_bound = 0;
  double safe_bound = -1;
  double gap = -1;
  int gpus_per_node = 8;
  double hetero_dp_ms = 0;
  std::string weighting = "uniform";
  double monotone_tolerance = 0.05;
};

core::Status run_build_space(const BuildSpaceArgs& args) {
  std::vector<planner::NamedProfile> profiles;
  for (const std::string& path : args.profiles) {
    HYD_ASSIGN_OR_RETURN(planner::Profile p, planner::Profile::load(path));
    profiles.push_back({path, std::move(p)});
  }
  planner::SpaceFitOptions options;
  options.gpu_memory_bound = args.gpu_memory_bound;
  options.safe_bound = args.safe_bound;
  options.gap = args.gap;
  options.gpus_per_node = args.gpus_per_node;
  options.hetero_dp_ms = args.hetero_dp_ms;
  options.weighting = args.weighting == "relative" ? planner::FitWeighting::kRelative
                                                   : planner::FitWeighting::kUniform;
  options.monotone_tolerance = args.monotone_tolerance;
  HYD_ASSIGN_OR_RETURN(planner::SpaceFit fit, planner::fit_scheme_space(profiles, options));
  HYD_RETURN_IF_ERROR(fit.space.save(args.out));
  std::printf("%s", planner::format_fit_report(fit).c_str());
  std::printf("wrote %s (%zu schemes)\n", args.out.c_str(), fit.space.schemes().size());
  return core::Status::ok();
}

}  // namespace

void add_build_space_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "build-space",
      "Fit the scheme space from profiles (docs/profiling.md).\n"
      "Per scheme time(s) = a*s^2 + b*s + c by least squares over the profiled medians, and\n"
      "the memory regression of spec.md §3 (A per tp, B, alpha, gap, safe_bound); writes the\n"
      "scheme-space JSON (docs/planner.md) and prints R² and the max relative error per scheme.");
  auto args = std::make_shared<BuildSpaceArgs>();
  app->add_option("--profile", args->profiles, "Profile JSON from `hydraulis profile` (repeatable)")
      ->required();
  app->add_option("--out", args->out, "Scheme-space JSON to write")->required();
  app->add_option("--gpu-memory-bound", args->gpu_memory_bound,
                  "Usable bytes per GPU (default: the device memory the profile recorded)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--safe-bound", args->safe_bound, "Bytes kept free (default: 5% of the bound)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--gap", args->gap,
                  "Bytes for every memory_regression.gap key (default: measured from the "
                  "fitted intercepts and the CUDA/NCCL context)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--gpus-per-node", args->gpus_per_node, "cluster_config.gpus_per_node")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--hetero-dp-ms", args->hetero_dp_ms, "comm_cost.hetero_dp (ms)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--weighting", args->weighting,
                  "Least squares over absolute (uniform) or relative errors")
      ->capture_default_str()
      ->check(CLI::IsMember({"uniform", "relative"}));
  app->add_option("--monotone-tolerance", args->monotone_tolerance,
                  "Largest share by which a median time may fall from one length to the next")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  commands.push_back({app, [args]() { return run_build_space(*args); }});
}

}  // namespace hydraulis::apps
