// StrategyRuntime: groups, stage shard, reshard plans (built once), and the 1F1B executor.
#include "parallel/strategy_runtime.h"

#include <algorithm>
#include <map>

#include "parallel/cp_plan.h"
#include "parallel/layer_split.h"
#include "parallel/schedule.h"

namespace hydraulis::parallel {

namespace {

core::Tensor int32_tensor(const std::vector<int32_t>& values) {
  core::Tensor t = core::Tensor::empty({int64_t(values.size())}, core::DType::kI32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

core::Tensor gather_rows(const core::Tensor& src, const std::vector<int32_t>& rows) {
  core::Tensor t = core::Tensor::empty({int64_t(rows.size())}, core::DType::kI32);
  for (size_t i = 0; i < rows.size(); ++i) t.data<int32_t>()[i] = src.data<int32_t>()[rows[i]];
  return t;
}

}  // namespace

core::StatusOr<std::unique_ptr<StrategyRuntime>> StrategyRuntime::create(
    std::shared_ptr<comm::Communicator> world, const planner::Strategy& strategy,
    const model::LlamaConfig& config, const model::ModelOptions& options,
    const std::vector<LogicalParam>& params, const Layout& optimizer,
    std::shared_ptr<const model::Ops> ops) {
  std::unique_ptr<StrategyRuntime> rt(new StrategyRuntime());
  rt->world_ = world;
  HYD_ASSIGN_OR_RETURN(rt->grid_, ProcessGrid::create(strategy, world->size()));
  HYD_RETURN_IF_ERROR(check_model_fits(config, strategy));
  const int me = world->rank();
  const RankCoord c = rt->grid_.coord(me);
  rt->coord_ = c;
  const planner::Scheme& scheme = rt->grid_.scheme(c.pipeline);
  if (scheme.cp > 1 && !ops->supports_attention_segments()) {
    return core::invalid_argument(
        "pipeline {} {} uses context parallelism, which the {} backend does not support yet: use "
        "schemes with cp = 1 on this device",
        c.pipeline, scheme.to_string(), ops->description());
  }
  // Groups: colours are the group's first world rank, keys the rank inside it (collective).
  HYD_ASSIGN_OR_RETURN(rt->tp_, world->split(rt->grid_.rank_of({c.pipeline, c.stage, c.cp_rank, 0}),
                                             c.tp_rank));
  HYD_ASSIGN_OR_RETURN(rt->cp_, world->split(rt->grid_.rank_of({c.pipeline, c.stage, 0, c.tp_rank}),
                                             c.cp_rank));
  rt->collectives_ = std::make_unique<GroupCollectives>(rt->tp_, rt->cp_);
  if (c.stage > 0) rt->prev_rank_ = rt->grid_.rank_of({c.pipeline, c.stage - 1, c.cp_rank, c.tp_rank});
  if (c.stage + 1 < scheme.pp) {
    rt->next_rank_ = rt->grid_.rank_of({c.pipeline, c.stage + 1, c.cp_rank, c.tp_rank});
  }

  // The stage's shard of the model.
  HYD_ASSIGN_OR_RETURN(rt->shard_config_, model::tensor_parallel_shard(config, scheme.tp));
  model::ModelPart part;
  part.first_layer = first_layer(config.num_layers, scheme.pp, c.stage);
  part.num_layers = split_layers(config.num_layers, scheme.pp)[size_t(c.stage)];
  part.embedding = c.stage == 0;
  part.head = c.stage == scheme.pp - 1;
  model::ParameterStore host = model::ParameterStore::create(rt->shard_config_, core::DType::kF32, part);
  rt->store_ = std::make_unique<model::ParameterStore>(
      ops->device() == core::Device::kCpu ? std::move(host) : host.copy_to(ops));
  model::ShardInfo shard;
  shard.collectives = rt->collectives_.get();
  shard.vocab_begin = int64_t(c.tp_rank) * rt->shard_config_.vocab_size;
  shard.full_vocab_size = config.vocab_size;
  rt->model_ = std::make_unique<model::LlamaModel>(rt->shard_config_, *rt->store_, options, shard);

  // Reshard plans between the optimizer layout and this strategy's layout.
  const Layout layout = strategy_layout(params, rt->grid_, config);
  const RankLayout& mine = layout.ranks[size_t(me)];
  HYD_CHECK(mine.tensors.size() == rt->store_->all().size(),
            "strategy layout has {} tensors on rank {}, the stage store {}", mine.tensors.size(),
            me, rt->store_->all().size());
  for (size_t i = 0; i < mine.tensors.size(); ++i) {
    const model::Parameter& p = rt->store_->all()[i];
    HYD_CHECK(p.name == params[size_t(mine.tensors[i].param)].name &&
                  p.value.numel() == mine.tensors[i].numel(),
              "rank {} tensor {}: store has {} ({} elements), layout {} ({} elements)", me, i,
              p.name, p.value.numel(), params[size_t(mine.tensors[i].param)].name,
              mine.tensors[i].numel());
  }
  HYD_ASSIGN_OR_RETURN(rt->to_strategy_, make_reshard_plan(optimizer, layout, ReshardMode::kAssign));
  HYD_ASSIGN_OR_RETURN(rt->to_optimizer_,
                       make_reshard_plan(layout, optimizer, ReshardMode::kAccumulate));
  rt->chunks_ = stage_chunks(layout, params, config.num_layers);
  return rt;
}

std::vector<core::Tensor> StrategyRuntime::values() {
  std::vector<core::Tensor> out;
  for (model::Parameter& p : store_->all()) out.push_back(p.value);
  return out;
}

std::vector<core::Tensor> StrategyRuntime::grads() {
  std::vector<core::Tensor> out;
  for (model::Parameter& p : store_->all()) out.push_back(p.grad);
  return out;
}

core::StatusOr<model::MicroBatch> context_parallel_shard(const model::MicroBatch& batch, int cp,
                                                        int cp_rank) {
  if (cp == 1) return batch;
  std::vector<int64_t> lengths;
  const int32_t* cu = batch.cu_seqlens.data<int32_t>();
  for (int64_t b = 0; b < batch.num_sequences(); ++b) lengths.push_back(cu[b + 1] - cu[b]);
  HYD_ASSIGN_OR_RETURN(CpPlan plan, make_cp_plan(lengths, cp));
  // A rank may own no token of a micro-batch of short sequences: it still joins every collective
  // of the layers with its zero rows.
  const CpRankPlan& mine = plan.ranks[size_t(cp_rank)];
  model::MicroBatch local;
  local.input_ids = gather_rows(batch.input_ids, mine.local_rows);
  local.targets = gather_rows(batch.targets, mine.local_rows);
  local.cu_seqlens = int32_tensor(mine.cu_seqlens_q);
  local.positions = int32_tensor(mine.positions);
  local.cu_seqlens_k = int32_tensor(mine.cu_seqlens_k);
  local.kv_rows = int32_tensor(mine.kv_rows);
  local.kv_local_rows = std::max<int64_t>(1, plan.max_local_rows);
  return local;
}

core::StatusOr<StageResult> StrategyRuntime::run(const std::vector<model::MicroBatch>& batches,
                                                 int64_t global_target_count,
                                                 const StepOverlap& overlap) {
  const planner::Scheme& scheme = grid_.scheme(coord_.pipeline);
  const int m = int(batches.size());
  const int64_t num_layers = shard_config_.num_layers;
  const int last_chunk = chunks_.count - 1;
  StageResult result;
  result.micro_batches = m;
  // Overlapped transfers: chunks arrive as the first forward needs them and depart as the last
  // backward finishes them (see StageChunks); the hooks are off outside those two calls.
  const std::vector<int>& use = chunks_.use[size_t(world_->rank())];
  int refreshed = -1;  // compute copies rewritten for the use chunks ≤ refreshed
  auto arrive = [&](int chunk) -> core::Status {
    if (overlap.propagate == nullptr || chunk <= refreshed) return core::Status::ok();
    HYD_RETURN_IF_ERROR(overlap.propagate->wait_through(chunk));
    for (size_t i = 0; i < use.size(); ++i) {
      model::Parameter& p = store_->all()[i];
      if (use[i] > refreshed && use[i] <= chunk && p.compute.defined()) {
        store_->ops().convert(p.value, p.compute);
      }
    }
    refreshed = chunk;
    return core::Status::ok();
  };
  auto depart = [&](int chunk) {
    if (overlap.reduce != nullptr) overlap.reduce->send_through(chunk);
  };
  const model::StageHooks use_hooks{[&](int64_t g) { return arrive(use_chunk(g)); }, {}};
  const model::StageHooks done_hooks{{}, [&](int64_t g) { depart(done_chunk(g, num_layers)); }};
  struct Unhook {
    model::LlamaModel& model;
    ~Unhook() { model.set_hooks(nullptr); }
  } unhook{*model_};
  if (m == 0) {  // an idle pipeline only joins the parameter and gradient exchanges
    HYD_RETURN_IF_ERROR(arrive(last_chunk));
    depart(last_chunk);
    return result;
  }
  std::vector<model::MicroBatch> local(static_cast<size_t>(m));
  for (int i = 0; i < m; ++i) {
    HYD_ASSIGN_OR_RETURN(local[size_t(i)],
                         context_parallel_shard(batches[size_t(i)], scheme.cp, coord_.cp_rank));
  }
  const PipeSchedule schedule = one_f_one_b(scheme.pp, m);
  std::vector<model::StageState> states(static_cast<size_t>(m));
  const model::Ops& ops = store_->ops();
  const core::DType dt = ops.compute_dtype(store_->dtype());
  const bool first = coord_.stage == 0, last = coord_.stage == scheme.pp - 1;
  // Sends wait for the next receive and go out in one group with it (Megatron's
  // send_forward_recv_backward): with unbuffered sends (NCCL) two neighbours that each send
  // before receiving in the 1F1B steady state would otherwise block each other.
  std::vector<comm::P2POp> pending;
  auto receive = [&](core::Tensor& t, int peer) -> core::Status {
    pending.push_back({comm::P2POp::Kind::kRecv, peer, t});
    core::Status status = world_->group_p2p(pending);
    pending.clear();
    return status;
  };
  for (const PipeOp& op : schedule[size_t(coord_.stage)]) {
    const model::MicroBatch& mb = local[size_t(op.micro_batch)];
    const int64_t T = mb.num_tokens();
    model::StageState& state = states[size_t(op.micro_batch)];
    if (op.kind == PipeOp::kForward) {
      core::Tensor input;
      if (!first) {
        input = ops.empty({T, shard_config_.hidden}, dt);  // (T, C)
        HYD_RETURN_IF_ERROR(receive(input, prev_rank_));
      }
      const bool first_forward = op.micro_batch == 0;
      model_->set_hooks(first_forward ? &use_hooks : nullptr);
      auto out = model_->forward_stage(mb, input, global_target_count, state);
      model_->set_hooks(nullptr);
      if (out.is_ok() && first_forward) HYD_RETURN_IF_ERROR(arrive(last_chunk));
      if (!out.is_ok()) {
        return out.status().with_context(fmt::format("micro-batch {}", op.micro_batch));
      }
      if (!last) pending.push_back({comm::P2POp::Kind::kSend, next_rank_, *out});
      if (last && coord_.tp_rank == 0) result.loss += state.loss;
    } else {
      core::Tensor dy;
      if (!last) {
        dy = ops.empty({T, shard_config_.hidden}, dt);  // (T, C)
        HYD_RETURN_IF_ERROR(receive(dy, next_rank_));
      }
      const bool last_backward = op.micro_batch == m - 1;
      model_->set_hooks(last_backward ? &done_hooks : nullptr);
      core::Tensor dx = model_->backward_stage(state, dy);
      model_->set_hooks(nullptr);
      if (last_backward) depart(last_chunk);
      if (!first) pending.push_back({comm::P2POp::Kind::kSend, prev_rank_, dx});
    }
  }
  if (!pending.empty()) HYD_RETURN_IF_ERROR(world_->group_p2p(pending));
  return result;
}

}  // namespace hydraulis::parallel
