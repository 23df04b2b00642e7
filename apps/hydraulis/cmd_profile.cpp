// `hydraulis profile`: measures micro-batch time and peak memory of every scheme (cp, tp, pp) over
// doubling sequence lengths on this machine's devices (train/profiler.h, docs/profiling.md) and
// writes the profile JSON (docs/formats.md) that `hydraulis build-space` fits. Under mpirun -np N
// the schemes of at most N ranks run (each on ranks 0 .. gpus − 1); without mpirun one rank.
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>

#include "apps/hydraulis/commands.h"
#include "core/progress.h"
#include "model/config.h"
#include "model/ops.h"
#include "planner/strategy.h"
#include "train/profiler.h"
#if HYD_WITH_MPI
#include "comm/mpi_comm.h"
#else
#include "comm/thread_comm.h"
#endif
#if HYD_WITH_NCCL
#include "comm/nccl_comm.h"
#endif

namespace hydraulis::apps {

namespace {

struct ProfileArgs {
  std::string model = "tiny";
  std::string device = "cpu";
  std::string schemes;
  int64_t min_seq_len = 128;
  int64_t max_seq_len = 65536;
  int warmup = 2;
  int repeats = 5;
  int64_t vocab_size = 0;
  uint64_t seed = 1234;
  std::string recompute = "none";
  int64_t logits_chunk_tokens = 4096;
  double memory_margin = 0.1;
  std::string out;
};

// First line of a shell command's output ("" when it fails).
std::string first_line(const std::string& command) {
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buf[256] = {};
  const bool got = std::fgets(buf, sizeof(buf), pipe) != nullptr;
  pclose(pipe);
  std::string line = got ? std::string(buf) : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  return line;
}

// The commit of the source tree this binary was built from, "+dirty" when tracked files differ
// from it ("unknown" when git or the tree is not there).
std::string git_hash() {
#ifdef HYD_SOURCE_TREE
  const std::string git = std::string("git -C \"") + HYD_SOURCE_TREE + "\" ";
  const std::string hash = first_line(git + "rev-parse --short=12 HEAD 2>/dev/null");
  if (!hash.empty()) {
    const bool dirty =
        !first_line(git + "status --porcelain --untracked-files=no 2>/dev/null").empty();
    return dirty ? hash + "+dirty" : hash;
  }
#endif
  return "unknown";
}

core::StatusOr<std::vector<planner::Scheme>> parse_schemes(const std::string& text) {
  if (text.empty()) return std::vector<planner::Scheme>{};
  auto parsed = planner::parse_strategy_list("[" + text + "]");
  if (!parsed.is_ok() || parsed->size() != 1) {
    return core::invalid_argument(
        "--schemes \"{}\" is not a list of schemes: write \"[(cp, tp, pp), ...]\", e.g. "
        "\"[(1, 1, 1), (1, 2, 1)]\"{}",
        text, parsed.is_ok() ? "" : " (" + parsed.status().message() + ")");
  }
  return parsed->front();
}

core::Status run_profile_command(const ProfileArgs& args) {
  const bool cuda = args.device == "cuda";
  if (cuda && !model::cuda_backend_built()) {
    return core::make_error(core::StatusCode::kUnimplemented,
                            "--device cuda: this build has no CUDA backend; rebuild with CUDA or "
                            "profile with --device cpu");
  }
  train::ProfileOptions options;
  HYD_ASSIGN_OR_RETURN(options.model, model::llama_config(args.model, args.vocab_size));
  HYD_ASSIGN_OR_RETURN(options.model_options.recompute,
                       model::recompute_from_string(args.recompute));
  if (cuda) options.model_options.logits_chunk_tokens = args.logits_chunk_tokens;
  HYD_ASSIGN_OR_RETURN(options.schemes, parse_schemes(args.schemes));
  options.min_seq_len = args.min_seq_len;
  options.max_seq_len = args.max_seq_len;
  options.warmup = args.warmup;
  options.repeats = args.repeats;
  options.seed = args.seed;
  options.memory_margin = args.memory_margin;
  options.git = git_hash();

#if HYD_WITH_MPI
  HYD_ASSIGN_OR_RETURN(std::shared_ptr<comm::MpiComm> mpi, comm::mpi_init_world(nullptr, nullptr));
  std::shared_ptr<comm::Communicator> world = mpi;
#else
  std::shared_ptr<comm::Communicator> world = comm::make_thread_world(1).front();
#endif
  HYD_RETURN_IF_ERROR(train::validate_profile_options(options, world->size()));
  std::shared_ptr<comm::Communicator> device_world = world;
  std::shared_ptr<const model::Ops> ops;
  if (cuda) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (local == nullptr) local = std::getenv("SLURM_LOCALID");
    const int gpu = local != nullptr ? std::atoi(local) : 0;
    HYD_RETURN_IF_ERROR(model::select_cuda_device(gpu));
    HYD_ASSIGN_OR_RETURN(ops, model::make_ops(core::Device::kCuda));
#if HYD_WITH_NCCL && HYD_WITH_MPI
    HYD_ASSIGN_OR_RETURN(
        device_world,
        comm::NcclComm::create(*mpi, gpu, static_cast<cudaStream_t>(ops->native_stream())));
#else
    if (world->size() > 1) {
      return core::make_error(core::StatusCode::kUnimplemented,
                              "--device cuda under mpirun needs NCCL and MPI, which this build lacks");
    }
#endif
  } else {
    HYD_ASSIGN_OR_RETURN(ops, model::make_ops(core::Device::kCpu));
  }
  if (world->rank() == 0) {
    std::fprintf(stderr, "model %s\ndevice %s, %d rank%s\n", options.model.describe().c_str(),
                 ops->description().c_str(), world->size(), world->size() == 1 ? "" : "s");
  }
  auto profiled = train::run_profile(options, world, device_world, ops);
  if (!profiled.is_ok()) {
    return profiled.status().with_context(fmt::format("rank {}", world->rank()));
  }
  if (world->rank() == 0) {
    HYD_RETURN_IF_ERROR(profiled->save(args.out));
    size_t points = 0;
    for (const auto& s : profiled->schemes) points += s.points.size();
    std::printf("profiled %zu schemes (%zu lengths in all) of %s on %s: %s\n",
                profiled->schemes.size(), points, options.model.name.c_str(),
                profiled->device_name.c_str(), args.out.c_str());
  }
  device_world.reset();
  ops.reset();
  world.reset();
#if HYD_WITH_MPI
  mpi.reset();
  return comm::mpi_finalize();
#else
  return core::Status::ok();
#endif
}

}  // namespace

void add_profile_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "profile",
      "Measure micro-batch time and peak memory per scheme (docs/profiling.md).\n"
      "For each scheme (cp, tp, pp) that fits the ranks (default: every cp, tp, pp in\n"
      "{1, 2, 4, 8} with cp*tp*pp <= ranks; under mpirun -np N a scheme runs on ranks\n"
      "0 .. cp*tp*pp-1), runs forward+backward of one sequence per micro-batch through the\n"
      "scheme's runtime at lengths MIN, 2*MIN, ... <= MAX, stopping at the first length whose\n"
      "memory forecast does not fit; writes every repeat to --out (docs/formats.md).");
  auto args = std::make_shared<ProfileArgs>();
  std::vector<std::string> names = model::llama_config_names();
  app->add_option("--model", args->model, "Model config")
      ->capture_default_str()
      ->check(CLI::IsMember(names));
  app->add_option("--device", args->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app->add_option("--schemes", args->schemes,
                  "Schemes \"[(cp, tp, pp), ...]\" (default: all of {1,2,4,8}^3 within the ranks)");
  app->add_option("--min-seq-len", args->min_seq_len, "First length (tokens per sequence)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--max-seq-len", args->max_seq_len, "Longest length profiled")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--warmup", args->warmup, "Untimed steps per length")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app->add_option("--repeats", args->repeats, "Timed steps per length (median and spread)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app->add_option("--vocab-size", args->vocab_size,
                  "Model vocabulary (default: GPT-2's 50257 padded to 50304)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--seed", args->seed, "Seed of the weights and token ids")->capture_default_str();
  app->add_option("--recompute", args->recompute, "Activation recomputation: none, selective, full")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "selective", "full"}));
  app->add_option("--logits-chunk-tokens", args->logits_chunk_tokens,
                  "Tokens per LM-head chunk on a GPU (as train)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--memory-margin", args->memory_margin,
                  "Headroom of the memory forecast (0.1: a length runs if 110% of it fits)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  app->add_option("--out", args->out, "Profile JSON to write (rank 0)")->required();
  commands.push_back({app, [args]() { return run_profile_command(*args); }});
}

}  // namespace hydraulis::apps
