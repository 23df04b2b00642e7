// DistributedTrainer's checkpoints (distributed_trainer.h, train/checkpoint.h): save gathers each
// logical tensor (value, exp_avg, exp_avg_sq) from its optimizer-layout owners to rank 0, one
// tensor at a time, and rank 0 streams it into the file; load has every rank read the chunks of
// its own shards. Ranks agree on every outcome (an error on one rank fails the call on all), and
// on a stop request after every step. Tests: tests/train/checkpoint_test.cpp, mpi_checkpoint_test.cpp.
#include <cstdio>
#include <cstring>

#include "optim/sharded_adamw.h"
#include "parallel/strategy_runtime.h"
#include "train/checkpoint.h"
#include "train/distributed_trainer.h"

namespace hydraulis::train {

namespace {

// The ranks whose `flag` is true (a world all-gather; the same list on every rank).
core::StatusOr<std::vector<int>> ranks_with(comm::Communicator& world, bool flag) {
  core::Tensor mine = core::Tensor::empty({1}, core::DType::kI64);
  mine.data<int64_t>()[0] = flag ? 1 : 0;
  core::Tensor all = core::Tensor::empty({world.size()}, core::DType::kI64);
  HYD_RETURN_IF_ERROR(world.all_gather(mine, all));
  std::vector<int> ranks;
  for (int r = 0; r < world.size(); ++r) {
    if (all.data<int64_t>()[r] != 0) ranks.push_back(r);
  }
  return ranks;
}

// Copies local tensor `lt` (its blocks stacked, row-major rows() × cols()) into the logical
// (rows, cols) matrix `full`.
void place_blocks(const parallel::LocalTensor& lt, const float* local, float* full, int64_t cols) {
  for (const parallel::Block& b : lt.blocks) {
    for (int64_t r = b.row0; r < b.row1; ++r) {
      std::memcpy(full + r * cols + b.col0, local, size_t(b.cols()) * sizeof(float));
      local += b.cols();
    }
  }
}

}  // namespace

core::StatusOr<core::Tensor> DistributedTrainer::gather_to_root(int param, int role) {
  const parallel::LogicalParam& lp = params_[size_t(param)];
  const int rank = world_->rank();
  core::Tensor full;
  // Every element has exactly one owner in the optimizer layout, so `full` is overwritten whole.
  if (rank == 0) full = core::Tensor::empty({lp.rows, lp.cols}, core::DType::kF32);
  const parallel::RankLayout& mine = optimizer_layout_.ranks[size_t(rank)];
  for (size_t i = 0; i < mine.tensors.size(); ++i) {
    const parallel::LocalTensor& lt = mine.tensors[i];
    if (lt.param != param) continue;
    const core::Tensor& source = role == int(TensorRole::kValue)    ? optimizer_->shards()[i].value
                                 : role == int(TensorRole::kExpAvg) ? optimizer_->exp_avg(i)
                                                                    : optimizer_->exp_avg_sq(i);
    const core::Tensor host = ops_->to_host(source).reshape({lt.rows(), lt.cols()});
    if (rank == 0) {
      place_blocks(lt, host.data<float>(), full.data<float>(), lp.cols);
    } else {
      HYD_RETURN_IF_ERROR(world_->send(host, 0));
    }
  }
  if (rank != 0) return full;
  // Rank 0 receives in rank order; each rank's messages arrive in its send order.
  for (int r = 1; r < world_->size(); ++r) {
    for (const parallel::LocalTensor& lt : optimizer_layout_.ranks[size_t(r)].tensors) {
      if (lt.param != param) continue;
      core::Tensor part = core::Tensor::empty({lt.rows(), lt.cols()}, core::DType::kF32);
      HYD_RETURN_IF_ERROR(world_->recv(part, r));
      place_blocks(lt, part.data<float>(), full.data<float>(), lp.cols);
    }
  }
  return full;
}

core::StatusOr<core::Tensor> DistributedTrainer::gather_moment(const std::string& name,
                                                               bool second) {
  int param = -1;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) param = int(i);
  }
  if (param < 0) return core::not_found("no parameter named '{}'", name);
  HYD_ASSIGN_OR_RETURN(
      core::Tensor full,
      gather_to_root(param, int(second ? TensorRole::kExpAvgSq : TensorRole::kExpAvg)));
  if (world_->rank() != 0) {
    full = core::Tensor::empty({params_[size_t(param)].rows, params_[size_t(param)].cols},
                               core::DType::kF32);
  }
  HYD_RETURN_IF_ERROR(world_->broadcast(full, 0));
  return full;
}

core::StatusOr<std::string> DistributedTrainer::save_checkpoint(const std::string& dir) {
  const TrainerConfig& c = config_.trainer;
  const int rank = world_->rank();
  CheckpointState state;
  state.model = c.model;
  state.training = training_settings(c, dataset_->num_documents(), dataset_->num_tokens());
  state.step = step_;
  state.optimizer_steps = optimizer_->steps_taken();
  // With the next batch already drawn for the planning thread, the position is the one before it.
  state.sampler = next_plan_.valid() ? planned_from_ : sampler_->state();
  state.saved_by = fmt::format("{} ranks: {}", world_->size(),
                               planner::format_strategy_list(config_.strategies));
  std::optional<PendingCheckpoint> pending;
  core::Status status = core::Status::ok();
  if (rank == 0) {
    auto begun = PendingCheckpoint::begin(dir, state);
    if (begun.is_ok()) {
      pending.emplace(std::move(begun).value());
    } else {
      status = begun.status();
    }
  }
  HYD_ASSIGN_OR_RETURN(std::vector<int> failed, ranks_with(*world_, !status.is_ok()));
  if (!failed.empty()) {
    return rank == 0 ? status
                     : core::io_error("rank 0 could not start the checkpoint in {} (its error "
                                      "says why)",
                                      dir);
  }
  // Every rank walks the same table; after a write error rank 0 keeps receiving (so no rank
  // blocks in a send) and the error is agreed at the end.
  const size_t P = params_.size();
  for (int role = 0; role < 3; ++role) {
    for (size_t p = 0; p < P; ++p) {
      HYD_ASSIGN_OR_RETURN(core::Tensor full, gather_to_root(int(p), role));
      if (rank != 0 || !status.is_ok()) continue;
      const CheckpointTensorInfo& t = pending->writer().tensors()[pending->writer().next()];
      HYD_CHECK(t.name == params_[p].name, "checkpoint table says {}, the layout {}", t.name,
                params_[p].name);
      status = pending->writer().write(full.data<float>(), full.numel());
    }
  }
  std::string where = dir + "/" + step_directory_name(step_);
  if (rank == 0 && status.is_ok()) {
    auto committed = pending->commit(c.keep_checkpoints);
    if (committed.is_ok()) {
      where = *committed;
    } else {
      status = committed.status();
    }
  }
  pending.reset();  // an uncommitted one removes its temp directory
  HYD_ASSIGN_OR_RETURN(failed, ranks_with(*world_, !status.is_ok()));
  if (!failed.empty()) {
    return rank == 0 ? status
                     : core::io_error("rank 0 could not write the checkpoint {} (its error says "
                                      "why); the previous checkpoint is untouched",
                                      where);
  }
  return where;
}

core::Status DistributedTrainer::load_shards(const std::string& path, data::SamplerState& sampler,
                                             int64_t& step, int64_t& optimizer_steps) {
  HYD_ASSIGN_OR_RETURN(std::string file, resolve_checkpoint(path));
  HYD_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::open(file));
  const CheckpointState& state = reader.state();
  const TrainerConfig& c = config_.trainer;
  HYD_RETURN_IF_ERROR(check_resume_compatible(
      state, c.model, training_settings(c, dataset_->num_documents(), dataset_->num_tokens()),
      file));
  const size_t P = reader.num_params();
  if (P != params_.size()) {
    return core::internal_error("{}: {} parameters, the layout has {}", file, P, params_.size());
  }
  const parallel::RankLayout& mine = optimizer_layout_.ranks[size_t(world_->rank())];
  for (size_t i = 0; i < mine.tensors.size(); ++i) {
    const parallel::LocalTensor& lt = mine.tensors[i];
    for (TensorRole role : {TensorRole::kValue, TensorRole::kExpAvg, TensorRole::kExpAvgSq}) {
      const size_t index = checkpoint_tensor_index(P, role, size_t(lt.param));
      core::Tensor host = core::Tensor::empty({lt.rows(), lt.cols()}, core::DType::kF32);
      float* out = host.data<float>();
      for (const parallel::Block& b : lt.blocks) {
        HYD_RETURN_IF_ERROR(reader.read_block(index, b.row0, b.row1, b.col0, b.col1, out));
        out += b.numel();
      }
      core::Tensor& dst = role == TensorRole::kValue    ? optimizer_->shards()[i].value
                          : role == TensorRole::kExpAvg ? optimizer_->exp_avg(i)
                                                        : optimizer_->exp_avg_sq(i);
      HYD_RETURN_IF_ERROR(assign_from_host(*ops_, host, dst));
    }
  }
  sampler = state.sampler;
  step = state.step;
  optimizer_steps = state.optimizer_steps;
  return core::Status::ok();
}

core::Status DistributedTrainer::load_checkpoint(const std::string& path) {
  if (step_ != 0 || next_plan_.valid()) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "load_checkpoint after {} steps: load before the first step", step_);
  }
  data::SamplerState sampler;
  int64_t step = 0, optimizer_steps = 0;
  core::Status status = load_shards(path, sampler, step, optimizer_steps);
  HYD_ASSIGN_OR_RETURN(std::vector<int> failed, ranks_with(*world_, !status.is_ok()));
  if (!status.is_ok()) return status.with_context(fmt::format("rank {}", world_->rank()));
  if (!failed.empty()) {
    return core::data_loss("rank {} could not load the checkpoint {} (its error says why)",
                           failed.front(), path);
  }
  if (aliased_) runtimes_[0]->store().refresh_compute();
  HYD_RETURN_IF_ERROR(sampler_->restore(sampler).with_context(path));
  optimizer_->set_steps_taken(optimizer_steps);
  step_ = step;
  return metrics_.resume(step_);
}

core::StatusOr<bool> DistributedTrainer::after_step(const std::function<bool()>& stop_requested) {
  bool stop = false;
  if (stop_requested) {
    // A signal reaches the ranks at slightly different times: any rank asking stops all of
    // them, after the same step.
    HYD_ASSIGN_OR_RETURN(std::vector<int> asking, ranks_with(*world_, stop_requested()));
    stop = !asking.empty();
  }
  const TrainerConfig& c = config_.trainer;
  if (checkpoint_due(c.checkpoint_dir, c.checkpoint_every, step_, c.steps, stop)) {
    HYD_ASSIGN_OR_RETURN(std::string where, save_checkpoint(c.checkpoint_dir));
    if (c.progress && world_->rank() == 0) std::fprintf(stderr, "checkpoint: %s\n", where.c_str());
  }
  if (stop && step_ < c.steps) {
    stopped_ = true;
    return true;
  }
  return false;
}

}  // namespace hydraulis::train
