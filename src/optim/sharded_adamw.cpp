// ShardedAdamW: the AdamW step of optim/adamw.cpp on optimizer-layout shards.
#include "optim/sharded_adamw.h"

#include <cmath>

namespace hydraulis::optim {

ShardedAdamW::ShardedAdamW(std::vector<Shard> shards, AdamWOptions options,
                           std::shared_ptr<const model::Ops> ops,
                           std::shared_ptr<comm::Communicator> world)
    : shards_(std::move(shards)), options_(options), ops_(std::move(ops)), world_(std::move(world)) {
  for (const Shard& s : shards_) {
    exp_avg_.push_back(ops_->zeros(s.value.shape(), s.value.dtype()));
    exp_avg_sq_.push_back(ops_->zeros(s.value.shape(), s.value.dtype()));
  }
}

void ShardedAdamW::zero_grads() {
  for (Shard& s : shards_) ops_->fill_zero(s.grad);
}

core::StatusOr<double> ShardedAdamW::grad_norm() {
  std::vector<core::Tensor> grads;
  for (const Shard& s : shards_) grads.push_back(s.grad);
  core::Tensor sum = core::Tensor::empty({1}, core::DType::kF64);
  sum.data<double>()[0] = grads.empty() ? 0.0 : ops_->grad_norm_sq(grads);
  HYD_RETURN_IF_ERROR(world_->all_reduce(sum));
  return std::sqrt(sum.data<double>()[0]);
}

StepResult ShardedAdamW::step(double lr, double grad_norm) {
  StepResult result;
  result.grad_norm = grad_norm;
  result.clip_factor = cpu::grad_clip_factor(grad_norm, options_.max_grad_norm);
  ++step_;
  for (size_t i = 0; i < shards_.size(); ++i) {
    ops_->adamw_step(shards_[i].value, shards_[i].grad, exp_avg_[i], exp_avg_sq_[i],
                     adamw_config(options_, lr, shards_[i].decay), step_, result.clip_factor,
                     shards_[i].compute);
  }
  return result;
}

}  // namespace hydraulis::optim
