// `hydraulis train`: single-device training of a named LLaMA config on an indexed data set
// (design.md's command line contract; docs/training.md). Builds a train::TrainerConfig from the
// options, prints the model, the memory forecast and a progress line per step, and writes the
// metrics JSONL (with MFU and peak memory on a GPU). --device cuda runs the same loop on one GPU
// (bf16 compute, fp32 master weights). With --strategies it runs the distributed runtime under
// mpirun: heterogeneous strategies chosen per step by the planner (train/distributed_trainer.h).
#include <signal.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <memory>

#include "apps/hydraulis/commands.h"
#include "apps/hydraulis/config_file.h"
#include "core/progress.h"
#include "data/indexed_dataset.h"
#include "model/config.h"
#include "model/ops.h"
#if HYD_WITH_MPI
#include "comm/mpi_comm.h"
#endif
#if HYD_WITH_NCCL
#include "comm/nccl_comm.h"
#endif
#include "parallel/process_grid.h"
#include "planner/batch_planner.h"
#include "planner/cost_model.h"
#include "planner/plan.h"
#include "planner/strategy.h"
#include "train/analytic_space.h"
#include "train/checkpoint.h"
#include "train/distributed_trainer.h"
#include "train/trainer.h"

namespace hydraulis::apps {

namespace {

struct TrainArgs {
  std::string model = "tiny";
  std::string data_prefix;
  std::string device = "cpu";
  int64_t steps = 10;
  int64_t global_token_num = 8192;
  int64_t max_seq_len = 1024;
  int64_t micro_batch_tokens = 0;
  int64_t vocab_size = 0;
  uint64_t seed = 1234;
  std::string metrics;
  double lr = 1e-4;
  double min_lr = -1;
  int64_t warmup_steps = 0;
  double weight_decay = 0.01;
  double max_grad_norm = 1.0;
  std::string recompute = "none";
  int64_t logits_chunk_tokens = 4096;
  std::string order = "sequential";
  bool skip_nonfinite = false;
  bool dry_run = false;
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 2;
  bool resume = false;
  std::string strategies;
  std::string scheme_space;
  int method = 4;
  std::string reshard = "overlap";
  std::string config_file;
  int64_t stop_after = 0;
};

// SIGTERM (a scheduler pre-empting the job, `kill`, mpirun forwarding it): the handler only sets a
// flag; the trainers ask it after every step (ranks agree on it over the world), checkpoint that
// step and stop, and the command then exits non-zero naming the step.
volatile std::sig_atomic_t g_sigterm = 0;

void on_sigterm(int) { g_sigterm = 1; }

void install_sigterm_handler() {
  struct sigaction action {};
  action.sa_handler = on_sigterm;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
}

bool sigterm_received() { return g_sigterm != 0; }

core::Status stopped_by_sigterm(const TrainArgs& args, int64_t step) {
  if (args.checkpoint_dir.empty()) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "stopped by SIGTERM after step {} of {}; no --checkpoint-dir, so "
                            "nothing was saved",
                            step, args.steps);
  }
  return core::make_error(core::StatusCode::kFailedPrecondition,
                          "stopped by SIGTERM after step {} of {}; checkpoint {}/{} written: "
                          "continue with --resume --checkpoint-dir {}",
                          step, args.steps, args.checkpoint_dir, train::step_directory_name(step),
                          args.checkpoint_dir);
}

// The trainers' stop hook: SIGTERM, or --stop-after K reached (a staged run: the schedule is the
// one of --steps, the run stops after step K with a checkpoint, as a pre-empted job would).
template <typename Trainer>
std::function<bool()> stop_hook(const TrainArgs& args, const Trainer& trainer) {
  return [&args, &trainer]() {
    return sigterm_received() || (args.stop_after > 0 && trainer.steps_done() >= args.stop_after);
  };
}

// The command's answer once a trainer stopped early: a note when --stop-after was reached, else
// an error naming SIGTERM (under mpirun the signal may have reached another rank only: the ranks
// agreed to stop, so a stop before --stop-after is always someone's SIGTERM).
core::Status stopped_early(const TrainArgs& args, int64_t step) {
  const bool asked = args.stop_after > 0 && step >= args.stop_after;
  if (sigterm_received() || !asked) return stopped_by_sigterm(args, step);
  std::fprintf(stderr, "stopped after step %lld of %lld (--stop-after)%s%s\n",
               static_cast<long long>(step), static_cast<long long>(args.steps),
               args.checkpoint_dir.empty() ? "" : "; continue with --resume --checkpoint-dir ",
               args.checkpoint_dir.c_str());
  return core::Status::ok();
}

// After --resume: the checkpoint's step must not be past --steps.
core::Status check_resumed_step(const TrainArgs& args, int64_t step, bool print) {
  if (step > args.steps) {
    return core::invalid_argument(
        "the checkpoint in {} is at step {}, past --steps {}: raise --steps (the total step "
        "count) above {}",
        args.checkpoint_dir, step, args.steps, step);
  }
  if (print) {
    std::fprintf(stderr, "resumed from %s at step %lld; %s %lld\n", args.checkpoint_dir.c_str(),
                 static_cast<long long>(step),
                 step == args.steps ? "nothing left to train: --steps is" : "training to step",
                 static_cast<long long>(args.steps));
  }
  return core::Status::ok();
}

// --dry-run with --strategies: the strategy list with every pipeline's micro-batch cap and
// memory forecast per GPU from the scheme space, and with --data the plan of the first global
// batch (plan.jsonl's line); nothing is allocated and no rank is started.
core::Status dry_run_distributed(const TrainArgs& args, const train::TrainerConfig& config) {
  HYD_ASSIGN_OR_RETURN(std::vector<planner::Strategy> strategies,
                       planner::parse_strategy_list(args.strategies));
  const int gpus = planner::strategy_gpus(strategies[0]);
  planner::SchemeSpace space;
  if (!args.scheme_space.empty()) {
    HYD_ASSIGN_OR_RETURN(space, planner::SchemeSpace::load(args.scheme_space));
  } else {
    HYD_ASSIGN_OR_RETURN(std::shared_ptr<const model::Ops> ops, model::make_ops(config.device));
    const bool gpu = config.device == core::Device::kCuda;
    space = train::analytic_scheme_space(
        config.model, strategies,
        gpu ? double(ops->available_memory()) : double(train::available_host_memory()),
        ops->peak_flops(), gpu);
  }
  HYD_RETURN_IF_ERROR(planner::validate_strategy_list(strategies, space, gpus));
  for (const planner::Strategy& strategy : strategies) {
    HYD_RETURN_IF_ERROR(parallel::check_model_fits(config.model, strategy));
  }
  HYD_ASSIGN_OR_RETURN(std::vector<planner::StrategyModel> models,
                       planner::build_strategy_models(space, strategies, gpus));
  const planner::OptimizerLayout layout = planner::optimizer_layout(strategies);
  const int64_t cap = config.micro_batch_tokens > 0 ? config.micro_batch_tokens + 1 : 0;
  std::printf("dry run: %d ranks (mpirun -np %d), %zu strategies, scheme space %s\n", gpus, gpus,
              strategies.size(), args.scheme_space.empty() ? "analytic" : args.scheme_space.c_str());
  for (size_t k = 0; k < models.size(); ++k) {
    std::printf("strategy %zu: %s\n", k, planner::format_strategy(strategies[k]).c_str());
    for (size_t p = 0; p < models[k].pipelines.size(); ++p) {
      planner::PipelineModel& pm = models[k].pipelines[p];
      if (cap > 0) pm.max_tokens = std::min(pm.max_tokens, cap);
      const planner::Scheme& scheme = pm.cost.scheme;
      std::printf("  pipeline %zu %s: up to %lld tokens per micro-batch, %s per GPU at the cap "
                  "(model state %s); a sequence of s tokens costs %.3g s^2 + %.3g s + %.3g ms\n",
                  p, scheme.to_string().c_str(), static_cast<long long>(pm.max_tokens),
                  core::format_bytes(planner::predicted_memory_bytes(space, scheme, layout,
                                                                     pm.max_tokens))
                      .c_str(),
                  core::format_bytes(planner::model_state_bytes(space, scheme, layout)).c_str(),
                  pm.cost.a, pm.cost.b, pm.cost.c);
    }
  }
  if (args.data_prefix.empty()) return core::Status::ok();
  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset, data::IndexedDataset::open(args.data_prefix));
  HYD_ASSIGN_OR_RETURN(auto sampler, train::make_sampler(config, dataset));
  const data::GlobalBatch batch = sampler->next();
  std::vector<int64_t> lengths;
  for (const data::SequenceRef& ref : batch.sequences) lengths.push_back(ref.tokens);
  planner::PlannerOptions options;
  HYD_ASSIGN_OR_RETURN(options.method, planner::batching_method_from_int(args.method));
  options.seed = 1;
  options.max_seq_len = config.max_seq_len + 1;
  HYD_ASSIGN_OR_RETURN(planner::BatchPlan plan, planner::plan_global_batch(lengths, models, options, 0));
  std::printf("first global batch: %zu sequences, %lld tokens -> strategy %d, estimated %.1f ms "
              "(lower bound %.1f ms), planned in %.1f ms\n",
              lengths.size(), static_cast<long long>(batch.num_tokens()), plan.strategy,
              plan.estimated_ms, plan.lower_bound_ms, plan.planning_ms);
  std::printf("%s\n", planner::plan_to_json_line(plan).c_str());
  return core::Status::ok();
}

// Multi-rank training (mpirun -np N hydraulis train --strategies ...): every rank plans, rank 0
// prints and writes the metrics.
core::Status run_distributed(const TrainArgs& args, const train::TrainerConfig& trainer,
                             const data::IndexedDataset& dataset) {
  train::DistributedConfig config;
  config.trainer = trainer;
  HYD_ASSIGN_OR_RETURN(config.strategies, planner::parse_strategy_list(args.strategies));
  if (!args.scheme_space.empty()) {
    HYD_ASSIGN_OR_RETURN(planner::SchemeSpace space, planner::SchemeSpace::load(args.scheme_space));
    HYD_RETURN_IF_ERROR(planner::validate_strategy_list(config.strategies, space,
                                                        planner::strategy_gpus(config.strategies[0])));
    config.scheme_space = std::move(space);
  }
  HYD_ASSIGN_OR_RETURN(config.method, planner::batching_method_from_int(args.method));
  config.reshard = args.reshard == "serial" ? train::DistributedConfig::ReshardSchedule::kSerial
                                            : train::DistributedConfig::ReshardSchedule::kOverlap;
#if HYD_WITH_MPI
  HYD_ASSIGN_OR_RETURN(std::shared_ptr<comm::MpiComm> world, comm::mpi_init_world(nullptr, nullptr));
#else
  return core::make_error(core::StatusCode::kUnimplemented,
                          "--strategies needs MPI: rebuild with -DHYD_MPI=ON (OpenMPI)");
  std::shared_ptr<comm::Communicator> world;
#endif
  if (world->rank() == 0) {
    std::fprintf(stderr, "%d ranks, %zu strategies: %s\n", world->size(), config.strategies.size(),
                 planner::format_strategy_list(config.strategies).c_str());
  }
  // Host tensors travel over MPI; on GPUs the tensors travel over NCCL on the backend's stream,
  // one GPU per rank (its local rank on the node).
  std::shared_ptr<comm::Communicator> device_world = world;
  std::shared_ptr<const model::Ops> ops;
  if (config.trainer.device == core::Device::kCuda) {
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (local == nullptr) local = std::getenv("SLURM_LOCALID");
    const int gpu = local != nullptr ? std::atoi(local) : 0;
    HYD_RETURN_IF_ERROR(model::select_cuda_device(gpu));
    HYD_ASSIGN_OR_RETURN(ops, model::make_ops(core::Device::kCuda));
#if HYD_WITH_NCCL
    HYD_ASSIGN_OR_RETURN(
        device_world,
        comm::NcclComm::create(*world, gpu, static_cast<cudaStream_t>(ops->native_stream())));
#else
    return core::make_error(core::StatusCode::kUnimplemented,
                            "--device cuda with --strategies needs NCCL, which this build lacks");
#endif
  } else {
    HYD_ASSIGN_OR_RETURN(ops, model::make_ops(core::Device::kCpu));
  }
  auto created = train::DistributedTrainer::create(config, dataset, world, device_world, ops);
  if (!created.is_ok()) return created.status().with_context(fmt::format("rank {}", world->rank()));
  auto& t = *created;
  if (args.resume) {
    core::Status resumed = t->load_checkpoint(args.checkpoint_dir);
    if (resumed.is_ok()) resumed = check_resumed_step(args, t->steps_done(), world->rank() == 0);
    if (!resumed.is_ok()) return resumed.with_context(fmt::format("rank {}", world->rank()));
  }
  install_sigterm_handler();
  core::Status status = t->run({}, stop_hook(args, *t));
  if (!status.is_ok()) return status.with_context(fmt::format("rank {}", world->rank()));
  const bool stopped = t->stopped();
  const int64_t steps_done = t->steps_done();
  const auto& history = t->history();
  if (world->rank() == 0 && !history.empty()) {
    double tokens = 0, seconds = 0;
    for (size_t i = history.size() > 1 ? 1 : 0; i < history.size(); ++i) {
      tokens += double(history[i].tokens);
      seconds += history[i].step_ms / 1e3;
    }
    std::printf("trained %zu steps of %s on %d ranks: loss %.4f -> %.4f, %s tokens/s%s%s\n",
                history.size(), trainer.model.name.c_str(), world->size(), history.front().loss,
                history.back().loss, core::format_count(seconds > 0 ? tokens / seconds : 0).c_str(),
                args.metrics.empty() ? "" : ", metrics in ", args.metrics.c_str());
  }
  t.reset();
#if HYD_WITH_MPI
  HYD_RETURN_IF_ERROR(comm::mpi_finalize());
#endif
  if (stopped) return stopped_early(args, steps_done);
  return core::Status::ok();
}

core::Status run_train(const TrainArgs& args) {
  const bool cuda = args.device == "cuda";
  if (cuda && !model::cuda_backend_built()) {
    return core::make_error(core::StatusCode::kUnimplemented,
                            "--device cuda: this build has no CUDA backend (configured with "
                            "HYD_CUDA=OFF or without a CUDA toolkit); rebuild with CUDA or train "
                            "on the CPU with --device cpu");
  }
  HYD_ASSIGN_OR_RETURN(model::LlamaConfig model, model::llama_config(args.model, args.vocab_size));
  train::TrainerConfig config;
  config.device = cuda ? core::Device::kCuda : core::Device::kCpu;
  config.model = model;
  HYD_ASSIGN_OR_RETURN(config.model_options.recompute, model::recompute_from_string(args.recompute));
  config.steps = args.steps;
  config.global_token_num = args.global_token_num;
  config.max_seq_len = args.max_seq_len;
  config.micro_batch_tokens = args.micro_batch_tokens;
  config.seed = args.seed;
  config.order =
      args.order == "shuffled" ? data::DocumentOrder::kShuffled : data::DocumentOrder::kSequential;
  config.lr = {args.lr, args.min_lr >= 0 ? args.min_lr : args.lr / 10, args.warmup_steps,
               args.steps};
  config.adamw.weight_decay = args.weight_decay;
  config.adamw.max_grad_norm = args.max_grad_norm;
  config.nonfinite =
      args.skip_nonfinite ? train::NonfinitePolicy::kSkipStep : train::NonfinitePolicy::kStop;
  config.metrics_path = args.metrics;
  config.checkpoint_dir = args.checkpoint_dir;
  config.checkpoint_every = args.checkpoint_every;
  config.keep_checkpoints = args.keep_checkpoints;
  if (args.resume && args.checkpoint_dir.empty()) {
    return core::invalid_argument("--resume needs --checkpoint-dir D, the directory to continue from");
  }
  if (args.checkpoint_every > 0 && args.checkpoint_dir.empty()) {
    return core::invalid_argument("--checkpoint-every {} needs --checkpoint-dir D (where to write them)",
                                  args.checkpoint_every);
  }
  // On a GPU the LM head runs over larger chunks (bf16 (chunk, V) logits) so its GEMMs are big.
  if (cuda) config.model_options.logits_chunk_tokens = args.logits_chunk_tokens;
  HYD_RETURN_IF_ERROR(config.validate());

  const int64_t cap = args.micro_batch_tokens > 0 ? args.micro_batch_tokens : args.max_seq_len;
  model::MemoryEstimate memory =
      cuda ? model::estimate_device_memory(model, cap, config.model_options)
           : model::estimate_memory(model, cap, config.model_options);
  std::fprintf(stderr, "model %s\n", model.describe().c_str());
  std::fprintf(stderr,
               "memory forecast (%s): %s (weights+grads+AdamW %s, activations %s, workspace %s) "
               "for %lld-token micro-batches; %s\n",
               args.device.c_str(), core::format_bytes(double(memory.total())).c_str(),
               core::format_bytes(double(memory.parameter_bytes)).c_str(),
               core::format_bytes(double(memory.activation_bytes)).c_str(),
               core::format_bytes(double(memory.transient_bytes)).c_str(),
               static_cast<long long>(cap),
               cuda ? "checked against the GPU's free memory at start"
                    : (core::format_bytes(double(train::available_host_memory())) +
                       " of host memory available")
                          .c_str());
  if (args.dry_run && !args.strategies.empty()) return dry_run_distributed(args, config);
  if (args.dry_run) return core::Status::ok();

  HYD_ASSIGN_OR_RETURN(data::IndexedDataset dataset, data::IndexedDataset::open(args.data_prefix));
  if (!args.strategies.empty()) return run_distributed(args, config, dataset);
  if (!args.scheme_space.empty()) {
    return core::invalid_argument("--scheme-space needs --strategies (the strategy list to plan with)");
  }
  HYD_ASSIGN_OR_RETURN(auto trainer, train::Trainer::create(config, dataset));
  if (cuda) std::fprintf(stderr, "device %s\n", trainer->ops().description().c_str());
  if (args.resume) {
    HYD_RETURN_IF_ERROR(trainer->load_checkpoint(args.checkpoint_dir));
    HYD_RETURN_IF_ERROR(check_resumed_step(args, trainer->steps_done(), true));
  }
  install_sigterm_handler();
  double tokens = 0, seconds = 0, flops = 0;
  int64_t peak_memory = 0;
  const int64_t first_step = trainer->steps_done() + 1;
  HYD_RETURN_IF_ERROR(trainer->run(
      [&](const train::StepMetrics& m) {
        peak_memory = std::max(peak_memory, m.peak_memory_bytes);
        if (m.step == first_step && args.steps > first_step) return;  // warms caches and threads
        tokens += double(m.tokens);
        seconds += m.step_ms / 1e3;
        flops += m.model_tflops_per_s * 1e12 * m.step_ms / 1e3;
      },
      stop_hook(args, *trainer)));
  if (trainer->stopped()) return stopped_early(args, trainer->steps_done());
  const auto& history = trainer->history();
  if (history.empty()) return core::Status::ok();  // resumed at --steps: nothing left to train
  std::printf("trained %lld steps of %s: loss %.4f -> %.4f, %s tokens/s (steps %lld..%lld)%s%s\n",
              static_cast<long long>(history.size()), model.name.c_str(), history.front().loss,
              history.back().loss, core::format_count(seconds > 0 ? tokens / seconds : 0).c_str(),
              static_cast<long long>(std::min(first_step + 1, trainer->steps_done())),
              static_cast<long long>(trainer->steps_done()), args.metrics.empty() ? "" : ", metrics in ",
              args.metrics.c_str());
  if (cuda && seconds > 0) {
    const double peak = trainer->ops().peak_flops();
    std::printf("model %.1f TFLOP/s, MFU %s, peak device memory %s\n", flops / seconds / 1e12,
                peak > 0 ? fmt::format("{:.1f}%", 100 * flops / seconds / peak).c_str() : "n/a",
                core::format_bytes(double(peak_memory)).c_str());
  }
  return core::Status::ok();
}

}  // namespace

void add_train_command(CLI::App& root, CommandList& commands) {
  CLI::App* app = root.add_subcommand(
      "train",
      "Train a LLaMA model on one device (docs/training.md).\n"
      "Global batches of exactly --global-token-num tokens come from the data set in order\n"
      "(spec.md §1), are packed into micro-batches of at most --micro-batch-tokens positions,\n"
      "and every micro-batch's gradient is accumulated before one AdamW step (warm-up + cosine\n"
      "learning rate, global grad-norm clipping). The loss is the mean over the step's tokens.\n"
      "Prints a progress line per step; --metrics writes one JSON line per step.");
  auto args = std::make_shared<TrainArgs>();
  std::vector<std::string> names = model::llama_config_names();
  app->add_option("--model", args->model, "Model config")
      ->capture_default_str()
      ->check(CLI::IsMember(names));
  app->add_option("--data", args->data_prefix, "Indexed data set prefix P (P.bin + P.idx)");
  app->add_option("--device", args->device, "cpu or cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
  app->add_option("--steps", args->steps, "Optimizer steps")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max()));
  app->add_option("--global-token-num", args->global_token_num, "Tokens per global batch")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, std::numeric_limits<int64_t>::max()));
  app->add_option("--max-seq-len", args->max_seq_len,
                  "Longest sequence is MAX_SEQ_LEN + 1 tokens (longer documents are cut)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app->add_option("--micro-batch-tokens", args->micro_batch_tokens,
                  "Positions per micro-batch (default: --max-seq-len)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--vocab-size", args->vocab_size,
                  "Model vocabulary (default: GPT-2's 50257 padded to 50304)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--seed", args->seed, "Seed of the weight init (and of --order shuffled)")
      ->capture_default_str();
  app->add_option("--metrics", args->metrics, "Metrics JSONL, one line per step");
  app->add_option("--lr", args->lr, "Peak learning rate")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--min-lr", args->min_lr,
                  "Learning rate at the end of the cosine (default lr/10)");
  app->add_option("--warmup-steps", args->warmup_steps, "Linear warm-up steps")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--weight-decay", args->weight_decay, "AdamW weight decay (matrices only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--max-grad-norm", args->max_grad_norm, "Global grad-norm clip (0: off)")
      ->capture_default_str();
  app->add_option("--recompute", args->recompute, "Activation recomputation: none, selective (norm and SwiGLU outputs) or full")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "selective", "full"}));
  app->add_option("--logits-chunk-tokens", args->logits_chunk_tokens,
                  "Tokens per LM-head chunk on a GPU (bf16 logits of CHUNK x vocab at once)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--order", args->order, "Document order: sequential or shuffled (per epoch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"sequential", "shuffled"}));
  app->add_flag("--skip-nonfinite", args->skip_nonfinite,
                "Skip a step whose loss or gradients hold NaN/Inf instead of stopping");
  app->add_flag("--dry-run", args->dry_run,
                "Print the model and the memory forecast (with --strategies also every pipeline's "
                "micro-batch cap and memory, and with --data the first global batch's plan), then "
                "exit");
  app->add_option("--checkpoint-dir", args->checkpoint_dir,
                  "Write checkpoints to D/step-NNNNNNNN (after the last step, every "
                  "--checkpoint-every steps and on SIGTERM); D/latest names the newest");
  app->add_option("--checkpoint-every", args->checkpoint_every,
                  "Also checkpoint every K steps (0: only at the end and on SIGTERM)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--keep-checkpoints", args->keep_checkpoints,
                  "Checkpoints kept in --checkpoint-dir (older ones are deleted after a new one "
                  "is committed)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--stop-after", args->stop_after,
                  "Stop after step K of the --steps schedule, with a checkpoint (a staged or "
                  "time-sliced run; continue with --resume); 0: never")
      ->check(CLI::NonNegativeNumber);
  app->add_flag("--resume", args->resume,
                "Continue from the latest checkpoint of --checkpoint-dir up to --steps (the total "
                "step count); any strategy list and rank count may have written it");
  app->add_option("--strategies", args->strategies,
                  "Strategy list \"[[(cp, tp, pp), ...], ...]\" (first homogeneous): multi-rank "
                  "training under mpirun -np N, N = GPUs of every strategy");
  app->add_option("--scheme-space", args->scheme_space,
                  "Scheme-space JSON for the planner (default: analytic from the model and device)");
  app->add_option("--method", args->method, "Batching method 0, 1, 3 or 4 (spec.md §7)")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 1, 3, 4}));
  app->add_option("--config", args->config_file,
                  "Read options from a file: `name = value` lines, names as the long options "
                  "without dashes (e.g. global-token-num = 16384, strategies = \"[[(1, 1, 2)]]\", "
                  "dry-run = true); options on the command line win");
  app->add_option("--reshard", args->reshard,
                  "Parameter propagation and gradient reduction: overlap (with the pipeline's "
                  "compute, over MPI; NCCL runs them whole) or serial (before and after it)")
      ->capture_default_str()
      ->check(CLI::IsMember({"overlap", "serial"}));
  commands.push_back({app, [app, args]() -> core::Status {
                        HYD_RETURN_IF_ERROR(apply_config_file(*app, args->config_file));
                        if (args->data_prefix.empty() && !args->dry_run) {
                          return core::invalid_argument("--data P is required (P.bin + P.idx)");
                        }
                        return run_train(*args);
                      }});
}

}  // namespace hydraulis::apps
