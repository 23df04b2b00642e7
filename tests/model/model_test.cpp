// Whole-model checks on micro configs: every parameter gradient against fp64 central finite
// differences (tied and untied head, grouped-query heads), invariance of loss and gradients to how
// sequences are split into micro-batches, full recomputation equal to none, bad token ids, NaN
// localisation and the safetensors round trip.
#include "model/llama.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/file.h"
#include "kernels/cpu/cross_entropy.h"
#include "model/safetensors.h"
#include "model/tensor_ops.h"
#include "model_test_util.h"

namespace hydraulis::model {
namespace {

using core::Tensor;

LlamaConfig fd_config(LmHead head) {
  LlamaConfig c;
  c.name = "fd";
  c.num_layers = 2;
  c.hidden = 8;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.ffn_hidden = 12;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.lm_head = head;
  return c;
}

// Seeded init scaled up (matrices ×10, norm weights 1 ± 0.3) so every gradient is well above the
// finite-difference noise.
ParameterStore fd_params(const LlamaConfig& c) {
  ParameterStore params = ParameterStore::create(c, core::DType::kF64);
  params.init(3);
  for (size_t s = 0; s < params.all().size(); ++s) {
    Parameter& p = params.at(s);
    double* v = p.value.data<double>();
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      v[i] = p.init_std == 0 ? 1.0 + 0.3 * init_normal(99, s, uint64_t(i)) : 10.0 * v[i];
    }
  }
  return params;
}

void check_fd(LmHead head) {
  LlamaConfig c = fd_config(head);
  ParameterStore params = fd_params(c);
  LlamaModel model(c, params, {Recompute::kNone, 3});
  auto seqs = Seqs{testing::test_sequence(6, c.vocab_size, 11),
                   testing::test_sequence(5, c.vocab_size, 12)};
  MicroBatch batch = pack_sequences(seqs);
  const int64_t global_targets = 12;  // more than this micro-batch's 9: another one is elsewhere
  params.zero_grads();
  double loss = model.forward_backward(batch, global_targets).value();
  EXPECT_NEAR(loss, model.forward_loss(batch, global_targets).value(), 1e-14);
  const double h = 1e-5;
  int64_t checked = 0;
  for (Parameter& p : params.all()) {
    double* x = p.value.data<double>();
    for (int64_t i = 0; i < p.value.numel(); ++i) {
      double saved = x[i];
      x[i] = saved + h;
      double plus = model.forward_loss(batch, global_targets).value();
      x[i] = saved - h;
      double minus = model.forward_loss(batch, global_targets).value();
      x[i] = saved;
      double numeric = (plus - minus) / (2 * h);
      double exact = p.grad.data<double>()[i];
      ASSERT_NEAR(exact, numeric, 1e-8 + 1e-6 * std::abs(numeric)) << p.name << " element " << i;
      ++checked;
    }
  }
  EXPECT_EQ(checked, params.num_elements());
}

TEST(LlamaModel, EveryGradientMatchesFiniteDifferencesUntied) {
  check_fd(LmHead::kUntied);
}

TEST(LlamaModel, EveryGradientMatchesFiniteDifferencesTied) {
  check_fd(LmHead::kTied);
}

struct SplitRun {
  double loss = 0;
  std::vector<Tensor> grads;
};

SplitRun run_split(const LlamaConfig& c, core::DType dtype,
                   const std::vector<std::vector<int32_t>>& seqs,
                   const std::vector<std::vector<size_t>>& split, Recompute recompute) {
  ParameterStore params = ParameterStore::create(c, dtype);
  params.init(testing::kGoldenSeed);
  LlamaModel model(c, params, {recompute, 4});
  int64_t targets = 0;
  for (const auto& s : seqs) targets += int64_t(s.size()) - 1;
  SplitRun run;
  for (const auto& members : split) {
    std::vector<std::vector<int32_t>> chosen;
    for (size_t i : members) chosen.push_back(seqs[i]);
    run.loss += model.forward_backward(pack_sequences(chosen), targets).value();
  }
  for (const Parameter& p : params.all()) run.grads.push_back(p.grad.clone());
  return run;
}

TEST(LlamaModel, LossAndGradsDoNotDependOnMicroBatchSplit) {
  LlamaConfig c = testing::golden_config();
  auto seqs = testing::golden_sequences(c.vocab_size);
  SplitRun one = run_split(c, core::DType::kF64, seqs, {{0, 1, 2}}, Recompute::kNone);
  SplitRun three = run_split(c, core::DType::kF64, seqs, {{2}, {0}, {1}}, Recompute::kNone);
  SplitRun two = run_split(c, core::DType::kF64, seqs, {{1, 2}, {0}}, Recompute::kNone);
  // Mean token loss of a random-init model is near ln(V) = ln 96 = 4.56.
  EXPECT_NEAR(one.loss, std::log(96.0), 0.1);
  for (const SplitRun* r : {&three, &two}) {
    EXPECT_NEAR(r->loss, one.loss, 1e-13);
    for (size_t i = 0; i < one.grads.size(); ++i) {
      for (int64_t j = 0; j < one.grads[i].numel(); ++j) {
        ASSERT_NEAR(element(r->grads[i], j), element(one.grads[i], j), 1e-14) << i << " " << j;
      }
    }
  }
}

// Deferred zeroing (ParameterStore::defer_zero_grads): the gradients start as NaN garbage, each
// first write overwrites, finish_deferred_zero clears the rest; bit for bit the zeroed run, tied
// and untied, over micro-batches of which one is empty.
TEST(LlamaModel, DeferredGradientZeroingEqualsZeroing) {
  for (LmHead head : {LmHead::kUntied, LmHead::kTied}) {
    LlamaConfig c = testing::golden_config();
    c.lm_head = head;
    auto seqs = testing::golden_sequences(c.vocab_size);
    SplitRun zeroed = run_split(c, core::DType::kF32, seqs, {{0, 2}, {1}}, Recompute::kNone);

    ParameterStore params = ParameterStore::create(c, core::DType::kF32);
    params.init(testing::kGoldenSeed);
    LlamaModel model(c, params, {Recompute::kNone, 4});
    int64_t targets = 0;
    for (const auto& s : seqs) targets += int64_t(s.size()) - 1;
    for (Parameter& p : params.all()) {
      float* g = p.grad.data<float>();
      for (int64_t i = 0; i < p.grad.numel(); ++i) g[i] = std::numeric_limits<float>::quiet_NaN();
    }
    params.defer_zero_grads();
    double loss = model.forward_backward(pack_sequences(Seqs{seqs[0], seqs[2]}), targets).value();
    loss += model.forward_backward(pack_sequences(Seqs{}), targets).value();  // writes nothing
    loss += model.forward_backward(pack_sequences(Seqs{seqs[1]}), targets).value();
    params.finish_deferred_zero();
    EXPECT_EQ(loss, zeroed.loss);
    for (size_t i = 0; i < zeroed.grads.size(); ++i) {
      EXPECT_FALSE(params.at(i).grad_unwritten);
      for (int64_t j = 0; j < zeroed.grads[i].numel(); ++j) {
        ASSERT_EQ(element(params.at(i).grad, j), element(zeroed.grads[i], j))
            << params.at(i).name << " " << j;
      }
    }
  }
}

TEST(LlamaModel, FullRecomputationGivesIdenticalResults) {
  LlamaConfig c = testing::golden_config();
  auto seqs = testing::golden_sequences(c.vocab_size);
  SplitRun none = run_split(c, core::DType::kF32, seqs, {{0, 2}, {1}}, Recompute::kNone);
  SplitRun full = run_split(c, core::DType::kF32, seqs, {{0, 2}, {1}}, Recompute::kFull);
  EXPECT_EQ(none.loss, full.loss);
  for (size_t i = 0; i < none.grads.size(); ++i) {
    for (int64_t j = 0; j < none.grads[i].numel(); ++j) {
      ASSERT_EQ(element(full.grads[i], j), element(none.grads[i], j)) << i << " " << j;
    }
  }
}

TEST(LlamaModel, SelectiveRecomputationGivesIdenticalResults) {
  LlamaConfig c = testing::golden_config();
  auto seqs = testing::golden_sequences(c.vocab_size);
  SplitRun none = run_split(c, core::DType::kF32, seqs, {{0, 2}, {1}}, Recompute::kNone);
  SplitRun selective = run_split(c, core::DType::kF32, seqs, {{0, 2}, {1}}, Recompute::kSelective);
  EXPECT_EQ(none.loss, selective.loss);
  for (size_t i = 0; i < none.grads.size(); ++i) {
    for (int64_t j = 0; j < none.grads[i].numel(); ++j) {
      ASSERT_EQ(element(selective.grads[i], j), element(none.grads[i], j)) << i << " " << j;
    }
  }
  EXPECT_EQ(recompute_from_string("selective").value(), Recompute::kSelective);
  EXPECT_FALSE(recompute_from_string("some").is_ok());
}

// Two pipeline stages (layer 0 + embedding, layer 1 + head) chained by hand equal the whole model.
TEST(LlamaModel, StagesChainedEqualTheWholeModel) {
  for (LmHead head : {LmHead::kUntied, LmHead::kTied}) {
    LlamaConfig c = testing::golden_config();
    c.lm_head = head;
    auto seqs = testing::golden_sequences(c.vocab_size);
    ParameterStore whole = ParameterStore::create(c, core::DType::kF64);
    whole.init(testing::kGoldenSeed);
    ParameterStore first = ParameterStore::create(c, core::DType::kF64, {0, 1, true, false});
    ParameterStore last = ParameterStore::create(c, core::DType::kF64, {1, 1, false, true});
    for (ParameterStore* part : {&first, &last}) {
      for (Parameter& p : part->all()) {
        const Parameter* src = whole.find(p.name);
        ASSERT_NE(src, nullptr) << p.name;
        p.value = src->value.clone();
      }
    }
    EXPECT_EQ(last.all().back().name, head == LmHead::kTied ? "model.embed_tokens.weight"
                                                            : "lm_head.weight");
    LlamaModel whole_model(c, whole, {Recompute::kNone, 4});
    LlamaModel m0(c, first, {Recompute::kNone, 4}), m1(c, last, {Recompute::kSelective, 4});
    MicroBatch batch = pack_sequences(seqs);
    const int64_t targets = batch.num_targets();
    const double expected = whole_model.forward_backward(batch, targets).value();
    StageState s0, s1;
    Tensor x = m0.forward_stage(batch, Tensor(), targets, s0).value();
    EXPECT_FALSE(m1.forward_stage(batch, x, targets, s1).value().defined());
    EXPECT_NEAR(s1.loss, expected, 1e-14);
    Tensor dx = m1.backward_stage(s1, Tensor());
    EXPECT_FALSE(m0.backward_stage(s0, dx).defined());
    for (ParameterStore* part : {&first, &last}) {
      for (const Parameter& p : part->all()) {
        const Parameter* ref = whole.find(p.name);
        // A tied table's gradient is split over both stages' copies (checked below).
        if (head == LmHead::kTied && p.name == "model.embed_tokens.weight") continue;
        for (int64_t j = 0; j < p.grad.numel(); ++j) {
          ASSERT_NEAR(element(p.grad, j), element(ref->grad, j), 1e-14) << p.name << " " << j;
        }
      }
    }
    if (head == LmHead::kTied) {
      const Parameter& ref = *whole.find("model.embed_tokens.weight");
      const Parameter& a = *first.find("model.embed_tokens.weight");
      const Parameter& b = *last.find("model.embed_tokens.weight");
      for (int64_t j = 0; j < ref.grad.numel(); ++j) {
        ASSERT_NEAR(element(a.grad, j) + element(b.grad, j), element(ref.grad, j), 1e-14) << j;
      }
    }
  }
}

TEST(LlamaModel, IgnoredTargetsCarryNoLoss) {
  LlamaConfig c = testing::golden_config();
  ParameterStore params = ParameterStore::create(c, core::DType::kF64);
  params.init(1);
  LlamaModel model(c, params);
  MicroBatch batch = pack_sequences(Seqs{testing::test_sequence(6, c.vocab_size, 5)});
  double all = model.forward_loss(batch, 5).value();
  // Ignore the last target: the loss drops by exactly that token's term, normaliser unchanged.
  MicroBatch last_only = pack_sequences(Seqs{testing::test_sequence(6, c.vocab_size, 5)});
  for (int64_t t = 0; t < 4; ++t) last_only.targets.data<int32_t>()[t] = cpu::kIgnoreIndex;
  batch.targets.data<int32_t>()[4] = cpu::kIgnoreIndex;
  EXPECT_EQ(batch.num_targets(), 4);
  double first_four = model.forward_loss(batch, 5).value();
  double fifth = model.forward_loss(last_only, 5).value();
  EXPECT_NEAR(first_four + fifth, all, 1e-14);
}

TEST(LlamaModel, TokenIdOutsideVocabularyIsAnError) {
  LlamaConfig c = testing::golden_config();
  ParameterStore params = ParameterStore::create(c, core::DType::kF32);
  LlamaModel model(c, params);
  MicroBatch batch = pack_sequences(Seqs{std::vector<int32_t>{1, 2, 96, 4}});
  auto loss = model.forward_backward(batch, 3);
  ASSERT_FALSE(loss.is_ok());
  EXPECT_EQ(loss.status().code(), core::StatusCode::kOutOfRange);
  EXPECT_NE(loss.status().message().find("token id 96 at position 2 of sequence 0"),
            std::string::npos)
      << loss.status().message();
  MicroBatch too_long = pack_sequences(Seqs{testing::test_sequence(66, c.vocab_size, 1)});
  auto long_loss = model.forward_loss(too_long, 65);
  ASSERT_FALSE(long_loss.is_ok());
  EXPECT_NE(long_loss.status().message().find("65 positions"), std::string::npos);
}

TEST(LlamaModel, FindNonfiniteNamesLayerAndTensor) {
  LlamaConfig c = testing::golden_config();
  ParameterStore params = ParameterStore::create(c, core::DType::kF32);
  params.init(2);
  LlamaModel model(c, params);
  MicroBatch batch = pack_sequences(testing::golden_sequences(c.vocab_size));
  EXPECT_FALSE(model.find_nonfinite(batch).found);
  params.find("model.layers.1.mlp.gate_up_proj.weight")->value.data<float>()[5] =
      std::numeric_limits<float>::infinity();
  EXPECT_FALSE(std::isfinite(model.forward_loss(batch, 24).value()));
  NonfiniteReport report = model.find_nonfinite(batch);
  EXPECT_TRUE(report.found);
  EXPECT_EQ(report.layer, 1);
  EXPECT_EQ(report.tensor, "model.layers.1 gate_up");
}

TEST(ParameterStore, InitIsDeterministicAndScaled) {
  LlamaConfig c = testing::golden_config();
  ParameterStore a = ParameterStore::create(c, core::DType::kF32);
  ParameterStore b = ParameterStore::create(c, core::DType::kF64);
  a.init(5);
  b.init(5);
  for (size_t s = 0; s < a.all().size(); ++s) {
    for (int64_t i = 0; i < a.at(s).value.numel(); ++i) {
      ASSERT_EQ(double(a.at(s).value.data<float>()[i]), b.at(s).value.data<double>()[i]);
    }
  }
  // Sample std of the embedding ~ 0.02; o_proj 0.02 / sqrt(2L) = 0.01; norms are ones.
  auto std_of = [](const Tensor& t) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < t.numel(); ++i)
      sum += element(t, i), sq += element(t, i) * element(t, i);
    double mean = sum / double(t.numel());
    return std::sqrt(sq / double(t.numel()) - mean * mean);
  };
  EXPECT_NEAR(std_of(a.embedding().value), 0.02, 0.001);
  EXPECT_NEAR(std_of(a.find("model.layers.0.self_attn.o_proj.weight")->value), 0.01, 0.001);
  EXPECT_EQ(a.find("model.norm.weight")->value.data<float>()[3], 1.0f);
  EXPECT_EQ(a.find("lm_head.weight")->value.shape(), core::Shape({96, 32}));
  // A different seed gives different weights.
  ParameterStore d = ParameterStore::create(c, core::DType::kF32);
  d.init(6);
  EXPECT_NE(d.embedding().value.data<float>()[0], a.embedding().value.data<float>()[0]);
  // Names: 1 embedding + 8 per layer + final norm + untied head.
  EXPECT_EQ(a.all().size(), size_t{1 + 8 * 2 + 1 + 1});
}

TEST(Safetensors, RoundTripAndCorruptHeader) {
  SafetensorsFile file;
  Tensor f = Tensor::empty({2, 3}, core::DType::kF32);
  for (int i = 0; i < 6; ++i) f.data<float>()[i] = float(i) * 0.5f;
  file.tensors.emplace_back("w", f);
  file.tensors.emplace_back("ids", Tensor::zeros({4}, core::DType::kI32));
  file.metadata["format"] = "pt";
  std::string path = ::testing::TempDir() + "/roundtrip.safetensors";
  ASSERT_TRUE(write_safetensors(path, file).is_ok());
  auto back = read_safetensors(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->tensors.size(), size_t{2});
  EXPECT_EQ(back->tensors[0].first, "w");  // file order kept
  EXPECT_EQ(back->find("w")->data<float>()[5], 2.5f);
  EXPECT_EQ(back->metadata.at("format"), "pt");
  ASSERT_TRUE(
      core::write_file_atomic(path, std::string("\x10\0\0\0\0\0\0\0{\"w\":{\"a\":1}}   ", 24))
          .is_ok());
  auto bad = read_safetensors(path);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), core::StatusCode::kDataLoss);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace hydraulis::model
