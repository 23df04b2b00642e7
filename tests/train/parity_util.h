// The parity check shared by the thread (parity_test.cpp) and mpirun (mpi_parity_test.cpp)
// tests: a small model on real text, the single-device trainer's losses and gradients as the
// reference, and one rank's run of the distributed trainer compared step by step.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/tensor_ops.h"
#include "train/distributed_trainer.h"
#include "train/trainer.h"

namespace hydraulis::train::testing {

// 5 layers (pp4 splits them 2/1/1/1), 4 heads on 2 kv heads, GPT-2's padded vocabulary.
inline TrainerConfig parity_config() {
  TrainerConfig c;
  c.model = model::LlamaConfig{"parity", 5, 32, 4, 2, 64, 50304, 128, 10000.0, 1e-5,
                               model::LmHead::kUntied};
  c.steps = 5;
  c.global_token_num = 384;
  c.max_seq_len = 96;
  c.seed = 11;
  c.lr = {3e-3, 3e-4, 1, 5};
  c.progress = false;
  return c;
}

struct Reference {
  std::vector<double> losses;
  std::vector<std::vector<std::pair<std::string, core::Tensor>>> grads;  // [step][param]
};

// The single-device trainer's losses and gradients of every step of `config`.
inline Reference make_reference(const TrainerConfig& config, const data::IndexedDataset& dataset) {
  Reference ref;
  auto trainer = Trainer::create(config, dataset).value();
  for (int64_t s = 0; s < config.steps; ++s) {
    StepMetrics m = trainer->step().value();
    ref.losses.push_back(m.loss);
    std::vector<std::pair<std::string, core::Tensor>> grads;
    for (const model::Parameter& p : trainer->params().all()) {
      grads.emplace_back(p.name, trainer->ops().to_host(p.grad).clone());
    }
    ref.grads.push_back(std::move(grads));
  }
  return ref;
}

// make_reference of parity_config(), computed once per test binary.
inline const Reference& single_device_reference(const data::IndexedDataset& dataset) {
  static Reference ref;
  static std::once_flag once;
  std::call_once(once, [&] { ref = make_reference(parity_config(), dataset); });
  return ref;
}

// Relative loss error and gradient error (max |Δ| over the tensor's largest |g|) allowed: fp32 on
// the CPU by default.
struct Tolerance {
  double loss = 2e-5;
  double grad = 1e-4;
};

// One rank's run of an already created trainer: every step's loss and every gathered parameter
// gradient against `ref`; mismatches go to fail() (rank 0 reports gradients, every rank its loss).
inline core::Status check_trainer(int rank, DistributedTrainer& trainer, const Reference& ref,
                                  const std::function<void(std::string)>& fail,
                                  Tolerance tol = {}) {
  for (size_t s = 0; s < ref.losses.size(); ++s) {
    HYD_ASSIGN_OR_RETURN(StepMetrics m, trainer.step());
    if (std::abs(m.loss - ref.losses[s]) > tol.loss * std::abs(ref.losses[s])) {
      fail(fmt::format("step {} loss {} vs single device {}", s + 1, m.loss, ref.losses[s]));
    }
    for (const auto& [name, expected] : ref.grads[s]) {
      HYD_ASSIGN_OR_RETURN(core::Tensor got, trainer.gather_parameter(name, true));
      double scale = 0, worst = 0;
      for (int64_t i = 0; i < expected.numel(); ++i) {
        scale = std::max(scale, std::abs(model::element(expected, i)));
      }
      for (int64_t i = 0; i < expected.numel(); ++i) {
        worst = std::max(worst, std::abs(model::element(got, i) - model::element(expected, i)));
      }
      if (rank == 0 && worst > tol.grad * std::max(scale, 1e-6)) {
        fail(fmt::format("step {} {}: max |Δgrad| {} (grad scale {})", s + 1, name, worst, scale));
      }
    }
  }
  return core::Status::ok();
}

// check_trainer of a CPU run over `comm` (the caller owns it; the trainer shares a non-owning
// alias for this call).
inline core::Status check_rank(comm::Communicator& comm, const DistributedConfig& config,
                               const data::IndexedDataset& dataset, const Reference& ref,
                               const std::function<void(std::string)>& fail) {
  std::shared_ptr<comm::Communicator> self(&comm, [](comm::Communicator*) {});
  HYD_ASSIGN_OR_RETURN(auto trainer, DistributedTrainer::create(config, dataset, self));
  return check_trainer(comm.rank(), *trainer, ref, fail);
}

}  // namespace hydraulis::train::testing
