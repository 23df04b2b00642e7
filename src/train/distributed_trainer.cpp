// The distributed training step: sample → plan → propagate → 1F1B → reduce → AdamW → metrics.
#include "train/distributed_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <span>

#include "core/progress.h"
#include "optim/sharded_adamw.h"
#include "parallel/process_grid.h"
#include "parallel/reshard_exec.h"
#include "parallel/strategy_runtime.h"
#include "train/analytic_space.h"

namespace hydraulis::train {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One f64 value summed over the world.
core::StatusOr<double> world_sum(comm::Communicator& world, double value) {
  core::Tensor t = core::Tensor::empty({1}, core::DType::kF64);
  t.data<double>()[0] = value;
  HYD_RETURN_IF_ERROR(world.all_reduce(t));
  return t.data<double>()[0];
}

// The plan's estimates and every pipeline's measured 1F1B time (the slowest of its ranks: a max
// over the world of one slot per pipeline).
core::Status pipeline_times(comm::Communicator& world, const planner::BatchPlan& plan,
                            const parallel::StrategyRuntime& rt, double run_ms, StepMetrics& m) {
  const size_t P = plan.pipelines.size();
  core::Tensor times = core::Tensor::zeros({int64_t(P)}, core::DType::kF64);
  times.data<double>()[rt.coord().pipeline] = run_ms;
  HYD_RETURN_IF_ERROR(world.all_reduce(times, comm::ReduceOp::kMax));
  m.estimated_ms = plan.estimated_ms;
  for (size_t p = 0; p < P; ++p) {
    m.pipelines.push_back({plan.pipelines[p].scheme.to_string(), plan.pipelines[p].estimated_ms,
                           times.data<double>()[p]});
  }
  return core::Status::ok();
}

// FNV-1a, 64 bit: a fingerprint of one start-up setting.
int64_t fingerprint(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ull;
  return int64_t(h);
}

// The boards' joules since the first step summed over the world (energy_meter.h); NaN when a
// rank has no reading or two ranks share a board (it would be counted twice). `own_boards`
// caches the first call's comparison of every rank's board name (-1: not compared yet). Every
// rank calls it every step: it is collective.
core::StatusOr<double> world_energy(comm::Communicator& world, const model::Ops& ops,
                                    const EnergyMeter& meter, int& own_boards) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (own_boards < 0) {
    const std::string board = board_name(ops);
    core::Tensor mine = core::Tensor::empty({1}, core::DType::kI64);
    mine.data<int64_t>()[0] = board.empty() ? 0 : fingerprint(board);
    core::Tensor all = core::Tensor::empty({int64_t(world.size())}, core::DType::kI64);
    HYD_RETURN_IF_ERROR(world.all_gather(mine, all));
    std::vector<int64_t> k(all.data<int64_t>(), all.data<int64_t>() + world.size());
    std::sort(k.begin(), k.end());
    const bool named = std::find(k.begin(), k.end(), 0) == k.end();
    own_boards = named && std::adjacent_find(k.begin(), k.end()) == k.end() ? 1 : 0;
  }
  if (own_boards == 0) return nan;
  const double local = meter.joules(ops);
  core::Tensor t = core::Tensor::empty({2}, core::DType::kF64);
  t.data<double>()[0] = std::isfinite(local) ? local : 0;
  t.data<double>()[1] = std::isfinite(local) ? 0 : 1;  // ranks without a reading
  HYD_RETURN_IF_ERROR(world.all_reduce(t));
  return t.data<double>()[1] > 0 ? nan : t.data<double>()[0];
}

// Every rank must run the same binary on the same model, strategies, data and schedule: a rank
// that differs would compute a different plan and hang or corrupt the step. Gathers one fingerprint
// per setting from every rank and names the first setting and rank that differ from rank 0.
core::Status check_ranks_agree(comm::Communicator& world, const DistributedConfig& config,
                               const data::IndexedDataset& dataset) {
  const TrainerConfig& c = config.trainer;
  const std::pair<const char*, std::string> settings[] = {
      {"binary (build time)", __DATE__ " " __TIME__},
      {"model config", c.model.describe()},
      {"strategy list", planner::format_strategy_list(config.strategies)},
      {"data set (documents, tokens)",
       fmt::format("{} {}", dataset.num_documents(), dataset.num_tokens())},
      {"schedule (steps, global tokens, max seq len, micro-batch cap, seed, method)",
       fmt::format("{} {} {} {} {} {}", c.steps, c.global_token_num, c.max_seq_len,
                   c.micro_batch_tokens, c.seed, int(config.method))},
  };
  const int64_t n = int64_t(std::size(settings)), W = world.size();
  core::Tensor mine = core::Tensor::empty({n}, core::DType::kI64);
  for (int64_t i = 0; i < n; ++i) mine.data<int64_t>()[i] = fingerprint(settings[i].second);
  core::Tensor all = core::Tensor::empty({W * n}, core::DType::kI64);
  HYD_RETURN_IF_ERROR(world.all_gather(mine, all));
  for (int64_t r = 1; r < W; ++r) {
    for (int64_t i = 0; i < n; ++i) {
      if (all.data<int64_t>()[r * n + i] != all.data<int64_t>()[i]) {
        return core::make_error(core::StatusCode::kFailedPrecondition,
            "rank {} differs from rank 0 in its {}{}: start every rank with the same binary and "
            "the same options",
            r, settings[i].first,
            world.rank() == r ? fmt::format(" (this rank: {})", settings[i].second) : "");
      }
    }
  }
  return core::Status::ok();
}

}  // namespace

DistributedTrainer::~DistributedTrainer() = default;

core::StatusOr<std::unique_ptr<DistributedTrainer>> DistributedTrainer::create(
    const DistributedConfig& config, const data::IndexedDataset& dataset,
    std::shared_ptr<comm::Communicator> world) {
  if (config.trainer.device != core::Device::kCpu) {
    return core::invalid_argument(
        "a GPU run needs its device communicator and backend: use the create() that takes them");
  }
  HYD_ASSIGN_OR_RETURN(std::shared_ptr<const model::Ops> ops, model::make_ops(core::Device::kCpu));
  return create(config, dataset, world, world, ops);
}

core::StatusOr<std::unique_ptr<DistributedTrainer>> DistributedTrainer::create(
    const DistributedConfig& config, const data::IndexedDataset& dataset,
    std::shared_ptr<comm::Communicator> world, std::shared_ptr<comm::Communicator> device_world,
    std::shared_ptr<const model::Ops> ops) {
  HYD_CHECK(world && device_world && ops && device_world->size() == world->size() &&
                device_world->device() == ops->device(),
            "DistributedTrainer::create: the device communicator must carry {} tensors over the "
            "same ranks",
            ops ? ops->description() : "the backend's");
  HYD_RETURN_IF_ERROR(config.trainer.validate());
  if (config.strategies.empty()) return core::invalid_argument("--strategies lists no strategy");
  std::unique_ptr<DistributedTrainer> t(new DistributedTrainer());
  t->config_ = config;
  t->dataset_ = &dataset;
  t->world_ = world;
  t->device_world_ = device_world;
  t->ops_ = ops;
  TrainerConfig& c = t->config_.trainer;
  const int W = world->size();
  for (size_t k = 0; k < config.strategies.size(); ++k) {
    if (planner::strategy_gpus(config.strategies[k]) != W) {
      return core::invalid_argument(
          "strategy {} {} uses {} GPUs but {} ranks run: every strategy must use all ranks "
          "(mpirun -np {})",
          k, planner::format_strategy(config.strategies[k]),
          planner::strategy_gpus(config.strategies[k]), W,
          planner::strategy_gpus(config.strategies[k]));
    }
    HYD_RETURN_IF_ERROR(parallel::check_model_fits(c.model, config.strategies[k]));
  }
  for (int k : config.forced_strategies) {
    if (k < 0 || k >= int(config.strategies.size())) {
      return core::invalid_argument("forced strategy {} is not in the list of {}", k,
                                    config.strategies.size());
    }
  }
  HYD_RETURN_IF_ERROR(check_ranks_agree(*world, config, dataset));
  if (ops->device() != c.device) {
    return core::invalid_argument("--device {} but the backend is {}",
                                  core::device_name(c.device), ops->description());
  }
  // One rank with one strategy: the optimizer works on the runtime's own tensors.
  t->aliased_ = W == 1 && config.strategies.size() == 1;
  if (!t->aliased_ && config.reshard == DistributedConfig::ReshardSchedule::kOverlap &&
      device_world->buffered_sends()) {
    HYD_ASSIGN_OR_RETURN(t->reshard_world_, device_world->split(0, device_world->rank()));
  }

  // The planner's view of every strategy (scheme space given or analytic).
  planner::SchemeSpace space =
      config.scheme_space.has_value()
          ? *config.scheme_space
          : analytic_scheme_space(c.model, config.strategies,
                                  c.device == core::Device::kCpu ? double(available_host_memory())
                                                                 : double(t->ops_->available_memory()),
                                  t->ops_->peak_flops(), c.device != core::Device::kCpu);
  HYD_ASSIGN_OR_RETURN(t->strategy_models_,
                       planner::build_strategy_models(space, config.strategies, W));
  const int64_t cap = c.micro_batch_tokens > 0 ? c.micro_batch_tokens : 0;
  // --micro-batch-tokens caps every pipeline's micro-batches (the memory model may allow more).
  for (auto& sm : t->strategy_models_) {
    for (auto& p : sm.pipelines) {
      if (cap > 0) p.max_tokens = std::min(p.max_tokens, cap + 1);
    }
  }

  // Optimizer layout (from the first, homogeneous strategy) and the runtimes.
  t->params_ = parallel::logical_params(c.model);
  HYD_ASSIGN_OR_RETURN(parallel::ProcessGrid homogeneous,
                       parallel::ProcessGrid::create(config.strategies[0], W));
  HYD_ASSIGN_OR_RETURN(t->optimizer_layout_,
                       parallel::optimizer_layout(t->params_, homogeneous, c.model));
  for (const planner::Strategy& s : config.strategies) {
    HYD_ASSIGN_OR_RETURN(auto rt,
                         parallel::StrategyRuntime::create(device_world, s, c.model, c.model_options,
                                                           t->params_, t->optimizer_layout_, t->ops_));
    t->runtimes_.push_back(std::move(rt));
  }

  // Optimizer shards, initialised element by element as ParameterStore::init would.
  const std::vector<model::ParameterSpec> specs = model::parameter_specs(c.model);
  std::vector<optim::Shard> shards;
  const parallel::RankLayout& mine = t->optimizer_layout_.ranks[size_t(world->rank())];
  for (size_t i = 0; i < mine.tensors.size(); ++i) {
    const parallel::LocalTensor& lt = mine.tensors[i];
    const parallel::LogicalParam& lp = t->params_[size_t(lt.param)];
    core::Tensor host = core::Tensor::empty({lt.rows(), lt.cols()}, core::DType::kF32);
    float* v = host.data<float>();
    for (const parallel::Block& b : lt.blocks) {
      for (int64_t r = b.row0; r < b.row1; ++r) {
        for (int64_t col = b.col0; col < b.col1; ++col) {
          *v++ = model::init_value(c.seed, uint64_t(lt.param), uint64_t(r * lp.cols + col),
                                   specs[size_t(lt.param)].init_std);
        }
      }
    }
    optim::Shard shard;
    shard.decay = specs[size_t(lt.param)].decay;
    if (t->aliased_) {
      model::Parameter& p = t->runtimes_[0]->store().all()[i];
      HYD_CHECK(p.value.numel() == host.numel(), "aliased shard {} size mismatch", p.name);
      p.value = t->ops_->upload_as(host.reshape(p.value.shape()), core::DType::kF32);
      t->ops_->fill_zero(p.grad);  // in place: the store's fused q/k/v layout stays
      shard.value = p.value;
      shard.grad = p.grad;
      shard.compute = p.compute;
    } else {
      shard.value = t->ops_->upload_as(host, core::DType::kF32);
      shard.grad = t->ops_->zeros(host.shape(), core::DType::kF32);
    }
    shards.push_back(std::move(shard));
  }
  if (t->aliased_) t->runtimes_[0]->store().refresh_compute();
  t->optimizer_ = std::make_unique<optim::ShardedAdamW>(std::move(shards), c.adamw, t->ops_, world);

  HYD_ASSIGN_OR_RETURN(t->sampler_, make_sampler(c, dataset));
  t->metrics_ = MetricsWriter(world->rank() == 0 ? c.metrics_path : "");
  return t;
}

std::future<DistributedTrainer::PlannedBatch> DistributedTrainer::plan_async(int64_t step) {
  // The sampler advances here, on the calling thread, in step order on every rank; the plan is a
  // pure function of the batch, so every rank's thread computes the same one.
  planned_from_ = sampler_->state();
  data::GlobalBatch batch = sampler_->next();
  return std::async(std::launch::async, [this, step, batch = std::move(batch)]() mutable {
    const auto start = Clock::now();
    std::vector<int64_t> lengths;
    for (const data::SequenceRef& ref : batch.sequences) lengths.push_back(ref.tokens);
    planner::PlannerOptions options;
    options.method = config_.method;
    options.seed = uint64_t(step);
    options.max_seq_len = config_.trainer.max_seq_len + 1;
    std::span<const planner::StrategyModel> candidates = strategy_models_;
    int forced = -1;
    if (!config_.forced_strategies.empty()) {
      forced = config_.forced_strategies[size_t(step - 1) % config_.forced_strategies.size()];
      candidates = candidates.subspan(size_t(forced), 1);
    }
    PlannedBatch out{std::move(batch),
                     planner::plan_global_batch(lengths, candidates, options, step - 1), 0};
    if (forced >= 0 && out.plan.is_ok()) out.plan->strategy = forced;
    out.planning_ms = ms_since(start);
    return out;
  });
}

core::StatusOr<StepMetrics> DistributedTrainer::step() {
  const auto start = Clock::now();
  energy_.start(*ops_);
  const TrainerConfig& c = config_.trainer;
  StepMetrics m;
  m.step = ++step_;
  m.lr = c.lr.lr_at(m.step);
  // This step's plan was made on a CPU thread while the previous step ran (design.md); the next
  // batch's planning starts now, behind this step's work.
  if (!next_plan_.valid()) next_plan_ = plan_async(m.step);
  PlannedBatch planned = next_plan_.get();
  if (m.step < c.steps) next_plan_ = plan_async(m.step + 1);
  const data::GlobalBatch& batch = planned.batch;
  std::vector<int64_t> positions;
  for (const data::SequenceRef& ref : batch.sequences) {
    positions.push_back(ref.tokens - 1);
    m.targets += ref.tokens - 1;
  }
  m.tokens = batch.num_tokens();
  if (m.targets == 0) {
    return core::invalid_argument("step {}: the global batch has no training positions", m.step);
  }
  if (!planned.plan.is_ok()) {
    return planned.plan.status().with_context(fmt::format("step {}", m.step));
  }
  const planner::BatchPlan& plan = *planned.plan;
  m.planning_ms = planned.planning_ms;
  m.strategy = plan.strategy;
  parallel::StrategyRuntime& rt = *runtimes_[size_t(plan.strategy)];

  // Propagate parameters: optimizer layout → this strategy's layout; overlapped, the receives
  // and sends of both exchanges are posted now and complete during the pipeline's run.
  std::vector<core::Tensor> shard_values, shard_grads;
  for (optim::Shard& s : optimizer_->shards()) {
    shard_values.push_back(s.value);
    shard_grads.push_back(s.grad);
  }
  rt.store().zero_grads();
  if (!aliased_) optimizer_->zero_grads();
  std::optional<parallel::ReshardExchange> propagate, reduce;
  parallel::StepOverlap overlap;
  if (!aliased_ && reshard_world_) {
    const parallel::StageChunks& chunks = rt.chunks();
    using By = parallel::ReshardExchange::ChunkBy;
    propagate.emplace(rt.propagate_plan(), chunks.use, chunks.count, By::kDestination,
                      *reshard_world_, *ops_, shard_values, rt.values());
    reduce.emplace(rt.reduce_plan(), chunks.done, chunks.count, By::kSource, *reshard_world_,
                   *ops_, rt.grads(), shard_grads);
    // Every rank posts and sends in this order, so the two exchanges' messages match.
    HYD_RETURN_IF_ERROR(propagate->post_receives());
    HYD_RETURN_IF_ERROR(reduce->post_receives());
    propagate->send_through(chunks.count - 1);
    overlap = {&*propagate, &*reduce};
  } else if (!aliased_) {
    std::vector<core::Tensor> local = rt.values();
    HYD_RETURN_IF_ERROR(parallel::run_reshard(rt.propagate_plan(), *device_world_, *ops_, shard_values, local).status());
    rt.store().refresh_compute();
  }

  // This rank's pipeline: its micro-batches, 1F1B.
  const planner::PipelinePlan& mine = plan.pipelines[size_t(rt.coord().pipeline)];
  std::vector<model::MicroBatch> micro_batches;
  for (const auto& members : mine.micro_batches) {
    std::vector<std::vector<int32_t>> chosen;
    for (int i : members) {
      HYD_ASSIGN_OR_RETURN(std::vector<int32_t> seq,
                           load_sequence(*dataset_, batch.sequences[size_t(i)], c.model));
      chosen.push_back(std::move(seq));
    }
    micro_batches.push_back(model::pack_sequences(chosen));
  }
  for (const auto& p : plan.pipelines) m.micro_batches += int64_t(p.micro_batches.size());
  ops_->reset_peak_memory();
  const auto run_start = Clock::now();
  HYD_ASSIGN_OR_RETURN(parallel::StageResult result, rt.run(micro_batches, m.targets, overlap));
  ops_->synchronize();  // a GPU's kernels are still running: the pipeline's time ends with them
  const double run_ms = ms_since(run_start);

  // Reduce gradients into the optimizer layout (summed over pipelines and cp ranks).
  if (propagate) {
    HYD_RETURN_IF_ERROR(propagate->finish().status());
    HYD_RETURN_IF_ERROR(reduce->finish().status());
  } else if (!aliased_) {
    HYD_RETURN_IF_ERROR(parallel::run_reshard(rt.reduce_plan(), *device_world_, *ops_, rt.grads(), shard_grads).status());
  }
  HYD_ASSIGN_OR_RETURN(m.loss, world_sum(*world_, result.loss));
  HYD_RETURN_IF_ERROR(pipeline_times(*world_, plan, rt, run_ms, m));
  HYD_ASSIGN_OR_RETURN(m.grad_norm, optimizer_->grad_norm());
  if (!std::isfinite(m.loss) || !std::isfinite(m.grad_norm)) {
    const std::string what = fmt::format(
        "step {} (strategy {}): the loss is {} and the gradient norm {}", m.step, plan.strategy,
        m.loss, m.grad_norm);
    if (c.nonfinite == NonfinitePolicy::kStop) {
      return core::invalid_argument("{}: lower --lr or raise --warmup-steps, or pass "
                                    "--skip-nonfinite",
                                    what);
    }
    m.skipped = true;
  } else {
    optimizer_->step(m.lr, m.grad_norm);
  }
  ops_->synchronize();
  m.step_ms = ms_since(start);
  finish_step_metrics(m, *ops_, c.model, positions, world_->size());
  HYD_ASSIGN_OR_RETURN(const double joules, world_energy(*world_, *ops_, energy_, own_boards_));
  set_energy_metrics(m, joules, energy_.seconds());
  history_.push_back(m);
  HYD_RETURN_IF_ERROR(metrics_.append(m));
  return m;
}

core::Status DistributedTrainer::run(const std::function<void(const StepMetrics&)>& on_step,
                                     const std::function<bool()>& stop_requested) {
  const auto start = Clock::now();
  while (step_ < config_.trainer.steps) {
    HYD_ASSIGN_OR_RETURN(StepMetrics m, step());
    if (config_.trainer.progress && world_->rank() == 0) {
      const double elapsed = ms_since(start) / 1e3;
      const double eta = elapsed / double(m.step) * double(config_.trainer.steps - m.step);
      std::fprintf(stderr,
                   "step %lld/%lld  strategy %lld  loss %.4f  grad norm %.3f  %s tok/s  "
                   "%.0f ms/step (planner's estimate %.0f ms, planning %.1f ms)%s  ETA %s%s\n",
                   static_cast<long long>(m.step), static_cast<long long>(config_.trainer.steps),
                   static_cast<long long>(m.strategy), m.loss, m.grad_norm,
                   core::format_count(m.tokens_per_s).c_str(), m.step_ms, m.estimated_ms,
                   m.planning_ms, power_text(m).c_str(),
                   core::format_duration(eta).c_str(), m.skipped ? "  (skipped)" : "");
    }
    if (on_step) on_step(m);
    HYD_ASSIGN_OR_RETURN(bool stop, after_step(stop_requested));
    if (stop) break;
  }
  return core::Status::ok();
}

core::StatusOr<core::Tensor> DistributedTrainer::gather_parameter(const std::string& name,
                                                                  bool gradient) {
  int param = -1;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) param = int(i);
  }
  if (param < 0) return core::not_found("no parameter named '{}'", name);
  const parallel::LogicalParam& lp = params_[size_t(param)];
  core::Tensor full = core::Tensor::zeros({lp.rows, lp.cols}, core::DType::kF64);
  const parallel::RankLayout& mine = optimizer_layout_.ranks[size_t(world_->rank())];
  for (size_t i = 0; i < mine.tensors.size(); ++i) {
    const parallel::LocalTensor& lt = mine.tensors[i];
    if (lt.param != param) continue;
    optim::Shard& s = optimizer_->shards()[i];
    const core::Tensor host = ops_->to_host(gradient ? s.grad : s.value);
    const float* v = host.data<float>();
    for (const parallel::Block& b : lt.blocks) {
      for (int64_t r = b.row0; r < b.row1; ++r) {
        for (int64_t col = b.col0; col < b.col1; ++col) full.data<double>()[r * lp.cols + col] = *v++;
      }
    }
  }
  HYD_RETURN_IF_ERROR(world_->all_reduce(full));
  return full;
}

}  // namespace hydraulis::train
