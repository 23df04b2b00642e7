// AdamW over the parameter store with global clipping, on the store's backend (model/ops.h:
// cpu::adamw_step / cuda::adamw_step, which also refreshes the bf16 compute copy).
#include "optim/adamw.h"

#include <cmath>

#include "model/tensor_ops.h"

namespace hydraulis::optim {

cpu::AdamWConfig adamw_config(const AdamWOptions& options, double lr, model::WeightDecay decay) {
  cpu::AdamWConfig config;
  config.lr = lr;
  config.beta1 = options.beta1;
  config.beta2 = options.beta2;
  config.eps = options.eps;
  config.weight_decay = decay == model::WeightDecay::kApply ? options.weight_decay : 0.0;
  return config;
}

AdamW::AdamW(model::ParameterStore& params, AdamWOptions options)
    : params_(params), options_(options) {
  const model::Ops& ops = params_.ops();
  for (const model::Parameter& p : params_.all()) {
    exp_avg_.push_back(ops.zeros(p.value.shape(), p.value.dtype()));
    exp_avg_sq_.push_back(ops.zeros(p.value.shape(), p.value.dtype()));
  }
}

double AdamW::grad_norm() const {
  // Each tied tensor appears once in the store, so it is counted once.
  std::vector<core::Tensor> grads;
  for (const model::Parameter& p : params_.all()) grads.push_back(p.grad);
  return std::sqrt(params_.ops().grad_norm_sq(grads));
}

std::vector<NonfiniteGradient> AdamW::nonfinite_gradients() const {
  std::vector<NonfiniteGradient> bad;
  for (const model::Parameter& p : params_.all()) {
    const core::Tensor grad = params_.ops().to_host(p.grad);
    std::optional<int64_t> first = model::first_nonfinite(grad);
    if (!first.has_value()) continue;
    bad.push_back(
        {p.name, p.layer, model::count_nonfinite(grad), *first, model::element(grad, *first)});
  }
  return bad;
}

StepResult AdamW::step(double lr, double grad_norm) {
  StepResult result;
  result.grad_norm = grad_norm;
  result.clip_factor = cpu::grad_clip_factor(result.grad_norm, options_.max_grad_norm);
  ++step_;
  auto& all = params_.all();
  for (size_t i = 0; i < all.size(); ++i) {
    params_.ops().adamw_step(all[i].value, all[i].grad, exp_avg_[i], exp_avg_sq_[i],
                             adamw_config(options_, lr, all[i].decay), step_, result.clip_factor,
                             all[i].compute);
  }
  return result;
}

}  // namespace hydraulis::optim
