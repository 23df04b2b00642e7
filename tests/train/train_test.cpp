// The single-device trainer: greedy packing by hand, a 10-step loss curve that falls on real text
// (data/corpora/web.jsonl through the GPT-2 tokenizer), the same step loss for any micro-batch
// cap, NaN/Inf naming and skipping, token ids outside the vocabulary, the memory forecast and the
// metrics JSONL keys.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>

#include "core/file.h"
#include "core/json.h"
#include "data/tokenizer.h"
#include "train/packer.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

using testing::real_dataset;
using testing::source_path;

TEST(PackGreedy, FirstFitDecreasingByHand) {
  // Longest first: 8 → mb0, 7 → mb1, 5 → mb2, 3 → mb1 (7 + 3 = 10), 2 → mb0 (8 + 2 = 10).
  std::vector<int64_t> positions = {5, 3, 8, 2, 0, 7};
  auto packed = pack_greedy(positions, 10);
  ASSERT_TRUE(packed.is_ok());
  std::vector<std::vector<size_t>> expected = {{2, 3}, {5, 1}, {0}};
  EXPECT_EQ(*packed, expected);
  auto too_long = pack_greedy(std::vector<int64_t>{4, 11}, 10);
  ASSERT_FALSE(too_long.is_ok());
  EXPECT_NE(too_long.status().message().find("sequence 1 has 11 positions"), std::string::npos);
}

TrainerConfig tiny_config() {
  TrainerConfig c;
  c.model = *model::llama_config("tiny");
  c.steps = 10;
  c.global_token_num = 256;
  c.max_seq_len = 128;
  c.seed = 5;
  c.lr = {1e-2, 1e-3, 2, 10};
  c.progress = false;
  return c;
}

TEST(Trainer, LossFallsOverTenStepsOnRealText) {
  std::string prefix = real_dataset(60);
  if (prefix.empty()) GTEST_SKIP() << "data/corpora/web.jsonl or data/gpt2 not set up";
  auto dataset = data::IndexedDataset::open(prefix);
  ASSERT_TRUE(dataset.is_ok());
  TrainerConfig config = tiny_config();
  config.metrics_path = ::testing::TempDir() + "/train_test_metrics.jsonl";
  auto trainer = Trainer::create(config, *dataset);
  ASSERT_TRUE(trainer.is_ok()) << trainer.status().to_string();
  ASSERT_TRUE((*trainer)->run().is_ok());
  const auto& h = (*trainer)->history();
  ASSERT_EQ(h.size(), size_t{10});
  // Random init: the loss starts at ln(50304) = 10.83.
  EXPECT_NEAR(h[0].loss, std::log(50304.0), 0.1);
  double last3 = (h[7].loss + h[8].loss + h[9].loss) / 3;
  EXPECT_LT(last3, h[0].loss - 1.5) << "loss did not fall: " << h[0].loss << " -> " << last3;
  for (const StepMetrics& m : h) {
    EXPECT_EQ(m.tokens, 256);
    EXPECT_FALSE(m.skipped);
  }
  // Metrics JSONL: one line per step with design.md's keys.
  auto text = core::read_file(config.metrics_path);
  ASSERT_TRUE(text.is_ok());
  std::istringstream lines(*text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    auto json = core::parse_json(line, "metrics");
    ASSERT_TRUE(json.is_ok());
    for (const char* key : {"step", "loss", "tokens", "step_ms", "strategy", "planning_ms",
                            "tokens_per_s", "grad_norm", "lr"}) {
      EXPECT_TRUE(json->contains(key)) << key;
    }
    EXPECT_EQ((*json)["step"].get<int>(), ++n);
    EXPECT_FALSE(json->contains("board_joules"));  // no energy counter on the CPU
  }
  EXPECT_EQ(n, 10);
}

// The energy figures (train/energy_meter.h): none on the CPU backend, and written only for a
// real reading (finite, positive), with the mean power over the elapsed time.
TEST(EnergyMeter, WritesOnlyReadingsAndNoneOnTheCpu) {
  auto ops = model::make_ops(core::Device::kCpu);
  ASSERT_TRUE(ops.is_ok());
  EnergyMeter meter;
  EXPECT_TRUE(std::isnan(meter.joules(**ops)));  // not started
  meter.start(**ops);
  EXPECT_TRUE(std::isnan(meter.joules(**ops)));
  EXPECT_EQ(board_name(**ops), "");
  StepMetrics m;
  set_energy_metrics(m, std::nan(""), 1.0);
  set_energy_metrics(m, 0.0, 1.0);
  set_energy_metrics(m, 5.0, 0.0);
  EXPECT_EQ(m.board_joules, -1);
  EXPECT_EQ(m.board_watts, -1);
  EXPECT_EQ(power_text(m), "");
  EXPECT_FALSE(m.to_json().contains("board_joules"));
  set_energy_metrics(m, 120.0, 0.2);
  EXPECT_DOUBLE_EQ(m.board_joules, 120.0);
  EXPECT_DOUBLE_EQ(m.board_watts, 600.0);
  EXPECT_EQ(power_text(m), "  600 W (mean)");
  const core::Json line = m.to_json();
  EXPECT_DOUBLE_EQ(line["board_joules"].get<double>(), 120.0);
  EXPECT_DOUBLE_EQ(line["board_watts"].get<double>(), 600.0);
}

TEST(Trainer, StepLossDoesNotDependOnMicroBatchCap) {
  std::string prefix = real_dataset(60);
  if (prefix.empty()) GTEST_SKIP() << "data/corpora/web.jsonl or data/gpt2 not set up";
  auto dataset = data::IndexedDataset::open(prefix);
  ASSERT_TRUE(dataset.is_ok());
  std::vector<StepMetrics> first;
  for (int64_t cap : {128, 256}) {
    TrainerConfig config = tiny_config();
    config.micro_batch_tokens = cap;
    config.steps = 1;
    auto trainer = Trainer::create(config, *dataset);
    ASSERT_TRUE(trainer.is_ok());
    auto m = (*trainer)->step();
    ASSERT_TRUE(m.is_ok());
    first.push_back(*m);
  }
  EXPECT_GT(first[0].micro_batches, first[1].micro_batches);
  EXPECT_EQ(first[0].targets, first[1].targets);
  EXPECT_NEAR(first[0].loss, first[1].loss, 1e-5);
  EXPECT_NEAR(first[0].grad_norm, first[1].grad_norm, 1e-4 * first[1].grad_norm);
}

// A small synthetic data set for the error paths (ids in [0, vocab)).
std::string synthetic_dataset(const std::string& name, int32_t max_id) {
  std::string path = ::testing::TempDir() + "/" + name;
  auto writer = data::IndexedDatasetWriter::create(path, data::TokenDType::kU16);
  EXPECT_TRUE(writer.is_ok());
  for (int d = 0; d < 8; ++d) {
    std::vector<int32_t> ids;
    ids.push_back(max_id);  // the largest id of the set opens every document
    for (int t = 1; t < 20 + d; ++t) ids.push_back((d * 7 + t * 3) % (max_id + 1));
    EXPECT_TRUE(writer->add_document(ids).is_ok());
  }
  EXPECT_TRUE(writer->finish().is_ok());
  return path;
}

TrainerConfig micro_config() {
  TrainerConfig c;
  c.model =
      model::LlamaConfig{"micro", 3, 16, 2, 1, 24, 100, 64, 10000.0, 1e-5, model::LmHead::kUntied};
  c.steps = 3;
  c.global_token_num = 64;
  c.max_seq_len = 32;
  c.lr = {1e-3, 1e-4, 0, 3};
  c.progress = false;
  return c;
}

TEST(Trainer, NonfiniteLossNamesStepLayerAndTensorOrSkips) {
  auto dataset = data::IndexedDataset::open(synthetic_dataset("train_test_nan", 99));
  ASSERT_TRUE(dataset.is_ok());
  for (NonfinitePolicy policy : {NonfinitePolicy::kStop, NonfinitePolicy::kSkipStep}) {
    TrainerConfig config = micro_config();
    config.nonfinite = policy;
    auto trainer = Trainer::create(config, *dataset);
    ASSERT_TRUE(trainer.is_ok());
    ASSERT_TRUE((*trainer)->step().is_ok());
    model::Parameter* p = (*trainer)->params().find("model.layers.2.mlp.down_proj.weight");
    p->value.data<float>()[3] = std::numeric_limits<float>::infinity();
    float before = (*trainer)->params().find("model.norm.weight")->value.data<float>()[0];
    auto m = (*trainer)->step();
    if (policy == NonfinitePolicy::kStop) {
      ASSERT_FALSE(m.is_ok());
      EXPECT_NE(m.status().message().find("step 2: the loss is NaN"), std::string::npos)
          << m.status().message();
      EXPECT_NE(m.status().message().find("model.layers.2 output (layer 2"), std::string::npos)
          << m.status().message();
    } else {
      ASSERT_TRUE(m.is_ok()) << m.status().to_string();
      EXPECT_TRUE(m->skipped);
      EXPECT_EQ((*trainer)->params().find("model.norm.weight")->value.data<float>()[0], before);
    }
  }
}

TEST(Trainer, TokenOutsideVocabularyIsAClearError) {
  auto dataset = data::IndexedDataset::open(synthetic_dataset("train_test_vocab", 150));
  ASSERT_TRUE(dataset.is_ok());
  auto trainer = Trainer::create(micro_config(), *dataset);
  ASSERT_TRUE(trainer.is_ok());
  auto m = (*trainer)->step();
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), core::StatusCode::kOutOfRange);
  EXPECT_NE(m.status().message().find("outside model 'micro''s vocabulary [0, 100)"),
            std::string::npos)
      << m.status().message();
}

TEST(Trainer, MemoryForecastRefusesWhatDoesNotFit) {
  auto dataset = data::IndexedDataset::open(synthetic_dataset("train_test_memory", 99));
  ASSERT_TRUE(dataset.is_ok());
  TrainerConfig config = micro_config();
  config.available_memory_bytes = 100000;  // the micro model needs ~0.5 MB
  auto trainer = Trainer::create(config, *dataset);
  ASSERT_FALSE(trainer.is_ok());
  EXPECT_EQ(trainer.status().code(), core::StatusCode::kResourceExhausted);
  EXPECT_NE(trainer.status().message().find("--recompute full"), std::string::npos);
  config = micro_config();
  config.micro_batch_tokens = 16;  // below --max-seq-len 32
  EXPECT_FALSE(Trainer::create(config, *dataset).is_ok());
}

}  // namespace
}  // namespace hydraulis::train
