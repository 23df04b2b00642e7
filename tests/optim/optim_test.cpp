// LR schedule values at hand-computed points, AdamW over a parameter store (decay only on
// matrices, global clipping) against a scalar re-derivation, and non-finite gradient naming.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "model/parameters.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace hydraulis::optim {
namespace {

TEST(LrSchedule, WarmupThenCosine) {
  LrSchedule s{1e-3, 1e-4, 4, 14};
  ASSERT_TRUE(s.validate().is_ok());
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1e-3);
  // Half-way through the cosine (step 9 of 4..14): (peak + min) / 2.
  EXPECT_NEAR(s.lr_at(9), 0.55e-3, 1e-15);
  // One step into the cosine: min + (peak − min)(1 + cos(π/10))/2.
  EXPECT_NEAR(s.lr_at(5), 1e-4 + 0.9e-3 * (1 + std::cos(M_PI / 10)) / 2, 1e-15);
  EXPECT_DOUBLE_EQ(s.lr_at(14), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(100), 1e-4);
  LrSchedule no_warmup{2e-3, 0, 0, 2};
  EXPECT_DOUBLE_EQ(no_warmup.lr_at(1), 1e-3);  // cos(π/2) → half
  EXPECT_FALSE((LrSchedule{1e-4, 1e-3, 0, 10}).validate().is_ok());
  EXPECT_FALSE((LrSchedule{1e-4, 0, -1, 10}).validate().is_ok());
}

model::LlamaConfig micro() {
  model::LlamaConfig c;
  c.name = "micro";
  c.num_layers = 1;
  c.hidden = 4;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.ffn_hidden = 6;
  c.vocab_size = 5;
  c.max_seq_len = 8;
  return c;
}

// Every gradient element = 1 (n elements in all): the norm is sqrt(n).
void fill_grads(model::ParameterStore& store, double value) {
  for (auto& p : store.all()) {
    for (int64_t i = 0; i < p.grad.numel(); ++i) p.grad.data<double>()[i] = value;
  }
}

TEST(AdamW, ClipsGloballyAndDecaysOnlyMatrices) {
  model::ParameterStore store = model::ParameterStore::create(micro(), core::DType::kF64);
  store.init(1);
  model::ParameterStore before = model::ParameterStore::create(micro(), core::DType::kF64);
  before.init(1);
  fill_grads(store, 1.0);
  const double n = double(store.num_elements());
  AdamW adamw(store, {0.9, 0.999, 1e-8, 0.1, 2.0});
  double norm = adamw.grad_norm();
  EXPECT_NEAR(norm, std::sqrt(n), 1e-12);
  StepResult r = adamw.step(0.01, norm);
  EXPECT_NEAR(r.clip_factor, 2.0 / (std::sqrt(n) + 1e-6), 1e-15);
  // First step of Adam with g = c (constant): m̂ = g, v̂ = g², update = lr · g/(|g| + eps) ≈ lr.
  const double g = r.clip_factor;
  for (size_t s = 0; s < store.all().size(); ++s) {
    const auto& p = store.at(s);
    double wd = p.decay == model::WeightDecay::kApply ? 0.1 : 0.0;
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      double p0 = before.at(s).value.data<double>()[i];
      double expected = p0 * (1 - 0.01 * wd) - 0.01 * g / (g + 1e-8);
      ASSERT_NEAR(p.value.data<double>()[i], expected, 1e-15) << p.name << " " << i;
    }
  }
  EXPECT_EQ(store.find("model.norm.weight")->decay, model::WeightDecay::kNone);
  EXPECT_EQ(adamw.steps_taken(), 1);
}

TEST(AdamW, NamesNonfiniteGradients) {
  model::ParameterStore store = model::ParameterStore::create(micro(), core::DType::kF64);
  AdamW adamw(store, {});
  EXPECT_TRUE(adamw.nonfinite_gradients().empty());
  store.find("model.layers.0.mlp.down_proj.weight")->grad.data<double>()[7] = std::nan("");
  store.find("model.layers.0.mlp.down_proj.weight")->grad.data<double>()[9] =
      std::numeric_limits<double>::infinity();
  EXPECT_TRUE(std::isnan(adamw.grad_norm()));
  auto bad = adamw.nonfinite_gradients();
  ASSERT_EQ(bad.size(), size_t{1});
  EXPECT_EQ(bad[0].parameter, "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(bad[0].layer, 0);
  EXPECT_EQ(bad[0].count, 2);
  EXPECT_EQ(bad[0].first_index, 7);
}

}  // namespace
}  // namespace hydraulis::optim
