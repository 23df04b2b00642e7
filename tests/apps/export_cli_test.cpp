// `hydraulis export` end to end, through the real binary ($HYD_BINARY_DIR/bin/hydraulis): a
// checkpoint written by the checkpoint writer (train/checkpoint.h) is exported in f32 and bf16,
// read back with model::import_hf and compared with the checkpoint's weights (bitwise / one
// bf16 rounding each); --check-logits writes the logits of the read-back export; a non-empty
// --out needs --force; a missing checkpoint is an error naming it. Docs: docs/model.md "Export to
// Hugging Face".
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file.h"
#include "model/hf_export.h"
#include "model/parameters.h"
#include "model/safetensors.h"
#include "tests/apps/cli_test_util.h"
#include "tests/train/train_test_util.h"
#include "train/checkpoint.h"

namespace hydraulis {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::hydraulis;
using testing::source;
using core::DType;
using core::Tensor;

// 2 layers, C 64, 4 heads on 2 kv heads, F 96, GPT-2's padded vocabulary, tied head.
model::LlamaConfig cli_model() {
  model::LlamaConfig c;
  c.name = "export_cli";
  c.num_layers = 2;
  c.hidden = 64;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.ffn_hidden = 96;
  c.vocab_size = model::padded_vocab_size(model::kGpt2VocabSize);
  c.max_seq_len = 128;
  c.lm_head = model::LmHead::kTied;
  return c;
}

// A committed checkpoint of step 2 of `dir` whose weights are our init of seed 5 (moments zero);
// returns those weights.
model::NamedTensors write_checkpoint(const std::string& dir) {
  train::CheckpointState s;
  s.model = cli_model();
  s.training.global_token_num = 256;
  s.training.max_seq_len = 128;
  s.training.seed = 5;
  s.training.order = "sequential";
  s.training.peak_lr = 1e-3;
  s.training.beta1 = 0.9;
  s.training.beta2 = 0.999;
  s.training.eps = 1e-8;
  s.step = 2;
  s.optimizer_steps = 2;
  s.saved_by = "export_cli_test";
  model::ParameterStore store = model::ParameterStore::create(s.model, DType::kF32);
  store.init(5);
  auto pending = train::PendingCheckpoint::begin(dir, s);
  EXPECT_TRUE(pending.is_ok()) << pending.status().to_string();
  if (!pending.is_ok()) return {};
  const size_t num_params = store.all().size();
  const auto& table = pending->writer().tensors();
  EXPECT_EQ(table.size(), 3 * num_params);
  for (size_t t = 0; t < table.size(); ++t) {
    const Tensor& value = store.at(t % num_params).value;
    std::vector<float> zeros(size_t(value.numel()), 0.0f);
    const float* data = t < num_params ? value.data<float>() : zeros.data();
    EXPECT_TRUE(pending->writer().write(data, value.numel()).is_ok());
  }
  EXPECT_TRUE(pending->commit(2).is_ok());
  model::NamedTensors weights;
  for (const model::Parameter& p : store.all()) weights.emplace_back(p.name, p.value);
  return weights;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(ExportCli, CheckpointToHuggingFaceAndBack) {
  if (!core::file_exists(source("data/gpt2/vocab.json"))) GTEST_SKIP() << "data/gpt2 not set up";
  const std::string root = ::testing::TempDir() + "/export_cli_" + std::to_string(::getpid());
  fs::remove_all(root);
  const std::string ckpt = root + "/ckpt", out = root + "/hf";
  const model::NamedTensors weights = write_checkpoint(ckpt);
  ASSERT_FALSE(weights.empty());
  const std::string vocab = source("data/gpt2/vocab.json"), merges = source("data/gpt2/merges.txt");

  CliRun help = hydraulis({"export", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_TRUE(contains(help.output, "--checkpoint") && contains(help.output, "--dtype"));

  // f32: bitwise the checkpoint's weights; the check file holds the read-back export's logits.
  CliRun f32 =
      hydraulis({"export", "--checkpoint", ckpt, "--out", out, "--dtype", "f32", "--vocab", vocab,
                 "--merges", merges, "--check-logits", root + "/check.safetensors"});
  ASSERT_EQ(f32.exit_code, 0) << f32.output;
  EXPECT_TRUE(contains(f32.output, "exported step 2")) << f32.output;
  EXPECT_TRUE(contains(f32.output, "differ by 0 of the largest")) << f32.output;
  auto back = model::import_hf(out);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->config.describe(), cli_model().describe());
  ASSERT_EQ(back->params.size(), weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    EXPECT_EQ(back->params[i].first, weights[i].first);
    ASSERT_EQ(std::memcmp(back->params[i].second.raw_data(), weights[i].second.raw_data(),
                          weights[i].second.nbytes()),
              0)
        << weights[i].first;
  }
  EXPECT_TRUE(core::file_exists(out + "/tokenizer_config.json"));
  auto check = model::read_safetensors(root + "/check.safetensors");
  ASSERT_TRUE(check.is_ok()) << check.status().to_string();
  const Tensor* ids = check->find("input_ids");
  const Tensor* logits = check->find("logits");
  ASSERT_TRUE(ids != nullptr && logits != nullptr && check->find("cu_seqlens") != nullptr);
  EXPECT_GT(ids->numel(), 20);
  EXPECT_EQ(logits->shape(), (core::Shape{ids->numel(), 50304}));
  model::MicroBatch batch;
  batch.input_ids = *ids;
  batch.targets = *ids;
  batch.cu_seqlens = *check->find("cu_seqlens");
  const Tensor ours = model::model_logits(cli_model(), weights, batch).value();
  EXPECT_EQ(std::memcmp(ours.raw_data(), logits->raw_data(), ours.nbytes()), 0);

  // A non-empty --out is refused without --force and left as it was; --force replaces it (bf16).
  CliRun again = hydraulis({"export", "--checkpoint", ckpt, "--out", out});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_TRUE(contains(again.output, "non-empty") && contains(again.output, "--force"))
      << again.output;
  EXPECT_EQ(model::import_hf(out)->dtype, DType::kF32);
  CliRun bf16 =
      hydraulis({"export", "--checkpoint", ckpt + "/step-00000002", "--out", out, "--force"});
  ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
  EXPECT_TRUE(contains(bf16.output, "no tokenizer files")) << bf16.output;
  back = model::import_hf(out);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->dtype, DType::kBF16);
  for (size_t i = 0; i < weights.size(); ++i) {
    const float* a = back->params[i].second.data<float>();
    const float* b = weights[i].second.data<float>();
    for (int64_t j = 0; j < weights[i].second.numel(); ++j)
      ASSERT_EQ(a[j], float(core::BFloat16(b[j]))) << weights[i].first << " " << j;
  }
  EXPECT_FALSE(core::file_exists(out + "/tokenizer_config.json"));  // the old directory is gone

  CliRun missing = hydraulis({"export", "--checkpoint", root + "/nothing", "--out", root + "/x"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.output, root + "/nothing")) << missing.output;
  EXPECT_FALSE(fs::exists(root + "/x"));
  CliRun dtype =
      hydraulis({"export", "--checkpoint", ckpt, "--out", root + "/y", "--dtype", "f16"});
  EXPECT_NE(dtype.exit_code, 0);
  EXPECT_FALSE(fs::exists(root + "/y"));
  fs::remove_all(root);
}

// The whole user path: `train` 2 steps of the tiny model on real text with --checkpoint-dir,
// `export` it, read it back: the trained weights (not the init) come back bitwise in f32, and
// the logits of the read-back export on real text are the checkpoint's.
TEST(ExportCli, TrainTwoStepsThenExportAndReimport) {
  const std::string data = train::testing::real_dataset(40);
  if (data.empty()) GTEST_SKIP() << "data/corpora/web.jsonl or data/gpt2 not set up";
  const std::string root = ::testing::TempDir() + "/export_cli_train_" + std::to_string(::getpid());
  fs::remove_all(root);
  const std::string ckpt = root + "/ckpt", out = root + "/hf";
  CliRun train = hydraulis({"train", "--model", "tiny", "--data", data, "--device", "cpu",
                            "--steps", "2", "--global-token-num", "256", "--max-seq-len", "128",
                            "--lr", "1e-2", "--seed", "9", "--checkpoint-dir", ckpt});
  ASSERT_EQ(train.exit_code, 0) << train.output;
  CliRun exp = hydraulis({"export", "--checkpoint", ckpt, "--out", out, "--dtype", "f32"});
  ASSERT_EQ(exp.exit_code, 0) << exp.output;
  EXPECT_TRUE(contains(exp.output, "exported step 2")) << exp.output;

  auto saved = train::load_checkpoint_weights(ckpt);
  ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
  auto back = model::import_hf(out);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->config.describe(), saved->model.describe());
  EXPECT_EQ(back->config.vocab_size, 50304);
  EXPECT_EQ(back->config.lm_head, model::LmHead::kTied);
  model::ParameterStore init = model::ParameterStore::create(saved->model, DType::kF32);
  init.init(9);
  ASSERT_EQ(back->params.size(), saved->params.size());
  for (size_t i = 0; i < saved->params.size(); ++i) {
    const Tensor& w = saved->params[i].second;
    ASSERT_EQ(std::memcmp(back->params[i].second.raw_data(), w.raw_data(), w.nbytes()), 0)
        << saved->params[i].first;
    if (init.at(i).init_std > 0) {  // AdamW moved every matrix away from the init
      EXPECT_NE(std::memcmp(init.at(i).value.raw_data(), w.raw_data(), w.nbytes()), 0)
          << saved->params[i].first;
    }
  }
  auto dataset = data::IndexedDataset::open(data);
  ASSERT_TRUE(dataset.is_ok());
  std::vector<std::vector<int32_t>> seqs;
  for (uint64_t d = 0; d < 2; ++d) {
    std::vector<int32_t> doc = dataset->tokens(d);
    doc.resize(std::min<size_t>(doc.size(), 48));
    seqs.push_back(doc);
  }
  const model::MicroBatch batch = model::pack_sequences(seqs);
  const Tensor ours = model::model_logits(saved->model, saved->params, batch).value();
  const Tensor theirs = model::model_logits(back->config, back->params, batch).value();
  ASSERT_EQ(ours.shape(), theirs.shape());
  EXPECT_EQ(std::memcmp(ours.raw_data(), theirs.raw_data(), ours.nbytes()), 0);
  fs::remove_all(root);
}

}  // namespace
}  // namespace hydraulis
