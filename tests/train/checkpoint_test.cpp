// Checkpoints: the file format (round trip of every tensor and field, a block read touching only
// its chunks, every single corrupt byte refused and named), the directory protocol (temp
// directory, `latest`, keeping the newest K), load_checkpoint_weights, resume refused with every
// differing model field named, and both trainers: round trip, bitwise resume on the CPU
// (run to N == run to K + resume to N, compared with ==), and loading under another strategy
// list and rank count (threads). Docs: docs/training.md "Checkpoints", docs/formats.md.
#include "train/checkpoint.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "comm/thread_comm.h"
#include "core/file.h"
#include "model/parameters.h"
#include "planner/strategy.h"
#include "train/distributed_trainer.h"
#include "train/trainer.h"
#include "parity_util.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

// 2 layers, hidden 16, 2 heads on 1 kv head, vocabulary 300 (so tensors are small and the
// embedding spans 2 chunks of a 16 KiB chunk when tests shrink it; the writer uses 1 MiB).
model::LlamaConfig small_model() {
  return model::LlamaConfig{"small", 2, 16, 2, 1, 24, 300, 64, 10000.0, 1e-5,
                            model::LmHead::kUntied};
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/checkpoint_test_" + name + "_" +
                          std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  return dir;
}

CheckpointState small_state(int64_t step) {
  CheckpointState s;
  s.model = small_model();
  s.training.global_token_num = 384;
  s.training.max_seq_len = 96;
  s.training.seed = 11;
  s.training.order = "sequential";
  s.training.dataset_documents = 60;
  s.training.dataset_tokens = 12345;
  s.training.peak_lr = 3e-3;
  s.training.min_lr = 3e-4;
  s.training.warmup_steps = 1;
  s.training.beta1 = 0.9;
  s.training.beta2 = 0.999;
  s.training.eps = 1e-8;
  s.training.weight_decay = 0.01;
  s.training.max_grad_norm = 1.0;
  s.training.total_steps = 5;
  s.step = step;
  s.optimizer_steps = step - 1;
  s.sampler.epoch = 1;
  s.sampler.consumed_samples = 17;
  s.sampler.batches = uint64_t(step);
  s.sampler.num_documents = 60;
  s.sampler.seed = 11;
  s.saved_by = "test";
  return s;
}

// Element i of table entry t: distinct, exactly representable, signed zeros included.
float value_of(size_t t, int64_t i) {
  if (i == 3) return -0.0f;
  return float(int64_t(t) * 1000 + i % 997) * 0.25f - 7.0f;
}

// Writes small_state(step) with value_of() tensors as a committed checkpoint of `dir`.
std::string write_small(const std::string& dir, int64_t step, int keep = 2) {
  auto pending = PendingCheckpoint::begin(dir, small_state(step));
  EXPECT_TRUE(pending.is_ok()) << pending.status().to_string();
  const auto& table = pending->writer().tensors();
  for (size_t t = 0; t < table.size(); ++t) {
    std::vector<float> v(size_t(table[t].rows * table[t].cols));
    for (size_t i = 0; i < v.size(); ++i) v[i] = value_of(t, int64_t(i));
    EXPECT_TRUE(pending->writer().write(v.data(), int64_t(v.size())).is_ok());
  }
  auto committed = pending->commit(keep);
  EXPECT_TRUE(committed.is_ok()) << committed.status().to_string();
  return committed.is_ok() ? *committed : "";
}

TEST(CheckpointFile, RoundTripOfEveryTensorAndField) {
  const std::string dir = fresh_dir("roundtrip");
  const std::string step_dir = write_small(dir, 3);
  EXPECT_EQ(step_dir, dir + "/step-00000003");
  EXPECT_EQ(*core::read_file(dir + "/latest"), "step-00000003\n");
  auto reader = CheckpointReader::open(*resolve_checkpoint(dir));
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  const CheckpointState& s = reader->state();
  const CheckpointState e = small_state(3);
  EXPECT_EQ(s.step, 3);
  EXPECT_EQ(s.optimizer_steps, 2);
  EXPECT_EQ(s.sampler, e.sampler);
  EXPECT_EQ(s.saved_by, "test");
  EXPECT_EQ(s.model.describe(), e.model.describe());
  EXPECT_EQ(s.training.peak_lr, 3e-3);
  EXPECT_EQ(s.training.eps, 1e-8);
  EXPECT_EQ(s.training.dataset_tokens, 12345u);
  EXPECT_EQ(s.training.order, "sequential");
  // 2 layers · 8 + embedding, final norm, lm_head = 19 parameters, three roles.
  ASSERT_EQ(reader->tensors().size(), 57u);
  EXPECT_EQ(reader->num_params(), 19u);
  EXPECT_EQ(reader->tensors()[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(reader->tensors()[19].role, TensorRole::kExpAvg);
  EXPECT_EQ(reader->tensors()[56].name, "lm_head.weight");
  for (size_t t = 0; t < reader->tensors().size(); ++t) {
    auto tensor = reader->read(t);
    ASSERT_TRUE(tensor.is_ok()) << tensor.status().to_string();
    EXPECT_EQ(tensor->shape(), model::parameter_specs(small_model())[t % 19].shape);
    for (int64_t i = 0; i < tensor->numel(); ++i) {
      const float want = value_of(t, i);
      ASSERT_EQ(std::memcmp(&tensor->data<float>()[i], &want, 4), 0) << t << " " << i;
    }
  }
  // A block: rows [5, 9) x cols [3, 7) of q_proj (16 x 16).
  std::vector<float> block(16);
  ASSERT_TRUE(reader->read_block(2, 5, 9, 3, 7, block.data()).is_ok());
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(block[size_t(r * 4 + c)], value_of(2, (5 + r) * 16 + 3 + c));
  }
  // The export entry point: the step directory itself or the checkpoint directory.
  for (const std::string& path : {dir, step_dir}) {
    auto weights = load_checkpoint_weights(path);
    ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
    EXPECT_EQ(weights->step, 3);
    EXPECT_EQ(weights->model.hidden, 16);
    ASSERT_EQ(weights->params.size(), 19u);
    EXPECT_EQ(weights->params[1].first, "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(weights->params[1].second.shape(), core::Shape{16});
    EXPECT_EQ(weights->params[18].second.data<float>()[5], value_of(18, 5));
  }
  std::filesystem::remove_all(dir);
}


// Reads every tensor of the checkpoint at `path`; the first error, or OK.
core::Status read_everything(const std::string& path) {
  HYD_ASSIGN_OR_RETURN(CheckpointReader reader, CheckpointReader::open(path));
  for (size_t t = 0; t < reader.tensors().size(); ++t) HYD_RETURN_IF_ERROR(reader.read(t).status());
  return core::Status::ok();
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5A);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

// Every byte of the header, metadata and padding, every 61st data byte, every checksum byte of
// the first tensors and every footer byte: each corrupted file is refused (DataLoss) naming the
// file, and a data byte names its tensor and role.
TEST(CheckpointFile, EveryCorruptByteIsRefusedAndNamed) {
  const std::string dir = fresh_dir("corrupt");
  const std::string file = write_small(dir, 1) + "/checkpoint.hcp";
  auto reader = CheckpointReader::open(file);
  ASSERT_TRUE(reader.is_ok());
  const auto table = reader->tensors();
  const uint64_t size = *core::file_size(file);
  std::vector<uint64_t> positions;
  for (uint64_t p = 0; p < table.front().offset; ++p) positions.push_back(p);
  for (const CheckpointTensorInfo& t : table) {
    for (uint64_t p = t.offset; p < t.offset + t.bytes; p += 61) positions.push_back(p);
  }
  for (size_t t = 0; t < 4; ++t) {
    for (uint64_t p = table[t].offset + table[t].bytes; p < table[t].end(kCheckpointChunkBytes); ++p) {
      positions.push_back(p);
    }
  }
  for (uint64_t p = size - kCheckpointFooterBytes; p < size; ++p) positions.push_back(p);
  int refused = 0;
  for (uint64_t p : positions) {
    flip_byte(file, p);
    core::Status status = read_everything(file);
    flip_byte(file, p);
    ASSERT_FALSE(status.is_ok()) << "byte " << p << " flipped was accepted";
    EXPECT_EQ(status.code(), core::StatusCode::kDataLoss) << p << ": " << status.message();
    EXPECT_NE(status.message().find(file), std::string::npos) << status.message();
    for (const CheckpointTensorInfo& t : table) {
      if (p >= t.offset && p < t.offset + t.bytes) {
        const std::string named = "tensor " + t.name + " (" + tensor_role_name(t.role) + ")";
        EXPECT_NE(status.message().find(named), std::string::npos) << status.message();
        EXPECT_NE(status.message().find("older step directory"), std::string::npos);
      }
    }
    ++refused;
  }
  EXPECT_GT(refused, 3000);
  if (std::getenv("HYD_VERBOSE") != nullptr) {
    std::fprintf(stderr, "%d corrupted files of a %llu-byte checkpoint refused\n", refused,
                 static_cast<unsigned long long>(size));
  }
  ASSERT_TRUE(read_everything(file).is_ok());  // flipped back: valid again
  // Truncated by one byte, and extended by one.
  std::filesystem::resize_file(file, size - 1);
  EXPECT_NE(read_everything(file).message().find("truncated"), std::string::npos);
  std::filesystem::resize_file(file, size + 1);
  EXPECT_NE(read_everything(file).message().find("truncated or extended"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(CheckpointDirectory, KeepsTheNewestRemovesStaleTempsAndReplacesAStep) {
  const std::string dir = fresh_dir("keep");
  for (int64_t step = 1; step <= 4; ++step) write_small(dir, step, 2);
  auto names = [&] {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      out.push_back(e.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(names(), (std::vector<std::string>{"latest", "step-00000003", "step-00000004"}));
  // A writer killed mid-write leaves its temp directory; the next checkpoint removes it.
  std::filesystem::create_directory(dir + "/step-00000005.tmp.999999999");
  write_small(dir, 5, 3);
  EXPECT_EQ(names(), (std::vector<std::string>{"latest", "step-00000003", "step-00000004",
                                               "step-00000005"}));
  // Writing step 5 again swaps the directories atomically.
  write_small(dir, 5, 1);
  EXPECT_EQ(names(), (std::vector<std::string>{"latest", "step-00000005"}));
  EXPECT_TRUE(read_everything(*resolve_checkpoint(dir)).is_ok());
  // An abandoned write (destroyed before commit) leaves the previous checkpoint and no temp.
  {
    auto pending = PendingCheckpoint::begin(dir, small_state(6));
    ASSERT_TRUE(pending.is_ok());
    std::vector<float> zeros(4800);
    ASSERT_TRUE(pending->writer().write(zeros.data(), 4800).is_ok());
  }
  EXPECT_EQ(names(), (std::vector<std::string>{"latest", "step-00000005"}));
  EXPECT_EQ(CheckpointReader::open(*resolve_checkpoint(dir))->state().step, 5);
  // Errors name the path and the fix.
  const std::string empty = fresh_dir("empty");
  std::filesystem::create_directories(empty);
  auto none = resolve_checkpoint(empty);
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), core::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find(empty + " holds no checkpoint"), std::string::npos);
  EXPECT_NE(none.status().message().find("--checkpoint-dir"), std::string::npos);
  ASSERT_TRUE(core::write_file_atomic(empty + "/latest", "step-00000007\n").is_ok());
  EXPECT_NE(resolve_checkpoint(empty).status().message().find("names step-00000007, which has no"),
            std::string::npos);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(empty);
}

TEST(CheckpointResume, ModelAndSettingsMismatchNamedFieldByField) {
  const CheckpointState found = small_state(2);
  model::LlamaConfig other = small_model();
  other.num_layers = 3;
  other.hidden = 32;
  other.lm_head = model::LmHead::kTied;
  TrainingSettings settings = found.training;
  settings.seed = 12;
  core::Status status = check_resume_compatible(found, other, settings, "ck.hcp");
  ASSERT_FALSE(status.is_ok());
  EXPECT_EQ(status.message(),
            "ck.hcp was saved by a run with other settings (4 field(s) differ: model.num_layers: "
            "this run 3, checkpoint 2; model.hidden: this run 32, checkpoint 16; model.lm_head: "
            "this run tied, checkpoint untied; --seed: this run 12, checkpoint 11): resume with "
            "the model 'small' and the options of the run that saved it, or start a new "
            "--checkpoint-dir");
  TrainingSettings longer = found.training;
  longer.total_steps = 50;  // information only: a resumed run may train longer
  longer.micro_batch_tokens = 4096;
  EXPECT_TRUE(check_resume_compatible(found, small_model(), longer, "ck.hcp").is_ok());
}

// ---- trainers --------------------------------------------------------------------------

const data::IndexedDataset& demo_dataset() {
  static data::IndexedDataset dataset = [] {
    const std::string prefix = testing::real_dataset(60);
    HYD_CHECK(!prefix.empty(), "demo data missing: run scripts/setup.sh");
    return data::IndexedDataset::open(prefix).value();
  }();
  return dataset;
}

bool same_bits(const core::Tensor& a, const core::Tensor& b) {
  return a.numel() == b.numel() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// A gathered f64 parameter against an f32 tensor: every value equal, bit for bit.
bool same_values(const core::Tensor& f64, const core::Tensor& f32) {
  if (f64.numel() != f32.numel()) return false;
  for (int64_t i = 0; i < f32.numel(); ++i) {
    const float v = float(f64.data<double>()[i]);
    if (std::memcmp(&v, &f32.data<float>()[i], 4) != 0) return false;
  }
  return true;
}

std::vector<double> losses_of(const std::vector<StepMetrics>& history) {
  std::vector<double> out;
  for (const StepMetrics& m : history) out.push_back(m.loss);
  return out;
}

TEST(TrainerCheckpoint, RoundTripOfEveryTensorAndState) {
  const TrainerConfig c = testing::parity_config();
  auto a = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(a->step().is_ok());
  ASSERT_TRUE(a->step().is_ok());
  const std::string dir = fresh_dir("trainer_roundtrip");
  auto where = a->save_checkpoint(dir);
  ASSERT_TRUE(where.is_ok()) << where.status().to_string();
  auto b = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(b->load_checkpoint(dir).is_ok());
  EXPECT_EQ(b->steps_done(), 2);
  EXPECT_EQ(b->optimizer().steps_taken(), 2);
  const auto& pa = a->params().all();
  const auto& pb = b->params().all();
  ASSERT_EQ(pa.size(), 43u);  // 5 layers · 8 + embedding, final norm, LM head
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(same_bits(pa[i].value, pb[i].value)) << pa[i].name;
    EXPECT_TRUE(same_bits(a->optimizer().exp_avg(i), b->optimizer().exp_avg(i))) << pa[i].name;
    EXPECT_TRUE(same_bits(a->optimizer().exp_avg_sq(i), b->optimizer().exp_avg_sq(i)));
  }
  // The sampler position too: the next step of both is the same batch and the same loss.
  const double la = a->step().value().loss, lb = b->step().value().loss;
  EXPECT_EQ(la, lb);
  // A second load is refused (state would mix).
  EXPECT_EQ(b->load_checkpoint(dir).code(), core::StatusCode::kFailedPrecondition);
  // Another model: every differing field named.
  TrainerConfig other = c;
  other.model.num_layers = 4;
  other.model.ffn_hidden = 128;
  other.seed = 12;
  auto o = Trainer::create(other, demo_dataset()).value();
  core::Status refused = o->load_checkpoint(dir);
  EXPECT_EQ(refused.code(), core::StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.message().find("3 field(s) differ: model.num_layers: this run 4, checkpoint 5; "
                                   "model.ffn_hidden: this run 128, checkpoint 64; --seed: this "
                                   "run 12, checkpoint 11"),
            std::string::npos)
      << refused.message();
  std::filesystem::remove_all(dir);
}

// Run to 5 == run to 2 (stopped by a stop request, checkpointed), then resumed to 5: the losses
// and the final weights are bitwise equal; periodic checkpoints keep the newest 2; the metrics
// file continues.
TEST(TrainerCheckpoint, ResumeIsBitwiseIdentical) {
  TrainerConfig c = testing::parity_config();
  auto a = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(a->run().is_ok());
  const std::vector<double> full = losses_of(a->history());
  ASSERT_EQ(full.size(), 5u);

  const std::string dir = fresh_dir("trainer_resume");
  c.checkpoint_dir = dir;
  c.checkpoint_every = 1;
  c.metrics_path = dir + "_metrics.jsonl";
  auto b = Trainer::create(c, demo_dataset()).value();
  int asked = 0;
  ASSERT_TRUE(b->run({}, [&] { return ++asked == 2; }).is_ok());
  EXPECT_TRUE(b->stopped());
  EXPECT_EQ(b->steps_done(), 2);
  EXPECT_EQ(*core::read_file(dir + "/latest"), "step-00000002\n");

  auto resumed = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(resumed->load_checkpoint(dir).is_ok());
  ASSERT_TRUE(resumed->run().is_ok());
  EXPECT_FALSE(resumed->stopped());
  std::vector<double> joined = losses_of(b->history());
  for (double l : losses_of(resumed->history())) joined.push_back(l);
  ASSERT_EQ(joined.size(), 5u);
  for (size_t s = 0; s < 5; ++s) EXPECT_EQ(joined[s], full[s]) << "step " << s + 1;
  for (size_t i = 0; i < a->params().all().size(); ++i) {
    EXPECT_TRUE(same_bits(a->params().all()[i].value, resumed->params().all()[i].value));
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/step-00000004"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/step-00000005"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/step-00000003"));
  const std::string metrics = *core::read_file(c.metrics_path);
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 5);
  EXPECT_NE(metrics.find("\"step\":1,"), std::string::npos) << metrics.substr(0, 200);
  EXPECT_NE(metrics.find("\"step\":5,"), std::string::npos);
  std::filesystem::remove_all(dir);
  std::filesystem::remove(c.metrics_path);
}

using Losses = std::vector<double>;

// Runs `fn(rank, trainer)` on `ranks` thread ranks with a trainer of `config` each.
core::Status on_thread_ranks(
    int ranks, const DistributedConfig& config,
    const std::function<core::Status(comm::Communicator&, DistributedTrainer&)>& fn) {
  return comm::run_on_threads(ranks, [&](comm::Communicator& comm) -> core::Status {
    std::shared_ptr<comm::Communicator> self(&comm, [](comm::Communicator*) {});
    HYD_ASSIGN_OR_RETURN(auto trainer, DistributedTrainer::create(config, demo_dataset(), self));
    return fn(comm, *trainer);
  });
}

DistributedConfig distributed_config(const std::string& strategies, std::vector<int> forced) {
  DistributedConfig config;
  config.trainer = testing::parity_config();
  config.strategies = planner::parse_strategy_list(strategies).value();
  config.forced_strategies = std::move(forced);
  return config;
}

// 2 ranks switching between dp2 and tp2: run to 5 == run to 2 (rank 1 alone asks to stop; both
// stop after step 2 and checkpoint it) + resume to 5, bitwise.
TEST(DistributedCheckpoint, ResumeIsBitwiseIdenticalAndRanksAgreeOnTheStop) {
  DistributedConfig config = distributed_config("[[(1, 1, 1), (1, 1, 1)], [(1, 2, 1)]]", {0, 1});
  std::mutex mutex;
  Losses full, first, rest;
  std::vector<int64_t> stopped_at(2, -1);
  ASSERT_TRUE(on_thread_ranks(2, config, [&](comm::Communicator& comm, DistributedTrainer& t) {
                HYD_RETURN_IF_ERROR(t.run());
                if (comm.rank() == 0) full = losses_of(t.history());
                return core::Status::ok();
              }).is_ok());
  ASSERT_EQ(full.size(), 5u);
  const std::string dir = fresh_dir("distributed_resume");
  config.trainer.checkpoint_dir = dir;
  ASSERT_TRUE(on_thread_ranks(2, config, [&](comm::Communicator& comm, DistributedTrainer& t) {
                HYD_RETURN_IF_ERROR(
                    t.run({}, [&] { return comm.rank() == 1 && t.steps_done() == 2; }));
                std::lock_guard<std::mutex> lock(mutex);
                stopped_at[size_t(comm.rank())] = t.stopped() ? t.steps_done() : -1;
                if (comm.rank() == 0) first = losses_of(t.history());
                return core::Status::ok();
              }).is_ok());
  EXPECT_EQ(stopped_at, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(*core::read_file(dir + "/latest"), "step-00000002\n");
  ASSERT_TRUE(on_thread_ranks(2, config, [&](comm::Communicator& comm, DistributedTrainer& t) {
                HYD_RETURN_IF_ERROR(t.load_checkpoint(dir));
                HYD_RETURN_IF_ERROR(t.run());
                if (comm.rank() == 0) rest = losses_of(t.history());
                return core::Status::ok();
              }).is_ok());
  Losses joined = first;
  joined.insert(joined.end(), rest.begin(), rest.end());
  ASSERT_EQ(joined.size(), 5u);
  for (size_t s = 0; s < 5; ++s) EXPECT_EQ(joined[s], full[s]) << "step " << s + 1;
  EXPECT_EQ(*core::read_file(dir + "/latest"), "step-00000005\n");
  std::filesystem::remove_all(dir);
}

// A single-device checkpoint (step 2) loads into 4 ranks of another strategy list: every gathered
// value and moment equals the file's; steps 3..5 match the single-device run within fp32
// tolerance; the 4-rank checkpoint of step 5 loads back into the single-device trainer with the
// very values the 4 ranks held.
TEST(DistributedCheckpoint, LoadsUnderOtherStrategiesAndRankCounts) {
  const TrainerConfig c = testing::parity_config();
  auto single = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(single->step().is_ok());
  ASSERT_TRUE(single->step().is_ok());
  const std::string dir1 = fresh_dir("from_single"), dir2 = fresh_dir("from_four");
  ASSERT_TRUE(single->save_checkpoint(dir1).is_ok());
  Losses reference = losses_of(single->history());
  for (int s = 0; s < 3; ++s) reference.push_back(single->step().value().loss);
  auto file = CheckpointReader::open(*resolve_checkpoint(dir1)).value();

  DistributedConfig config =
      distributed_config("[[(1, 2, 2)], [(1, 2, 1), (1, 1, 2)]]", {1, 0, 1, 0, 1});
  std::mutex mutex;
  std::vector<std::string> failures;
  auto fail = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mutex);
    failures.push_back(std::move(what));
  };
  std::vector<std::pair<std::string, core::Tensor>> held;  // rank 0: values at step 5
  Losses continued;
  ASSERT_TRUE(on_thread_ranks(4, config, [&](comm::Communicator& comm, DistributedTrainer& t) {
                HYD_RETURN_IF_ERROR(t.load_checkpoint(dir1));
                const size_t P = file.num_params();
                for (size_t p = 0; p < P; ++p) {
                  const std::string& name = file.tensors()[p].name;
                  HYD_ASSIGN_OR_RETURN(core::Tensor v, t.gather_parameter(name, false));
                  HYD_ASSIGN_OR_RETURN(core::Tensor m1, t.gather_moment(name, false));
                  HYD_ASSIGN_OR_RETURN(core::Tensor m2, t.gather_moment(name, true));
                  if (comm.rank() != 0) continue;
                  if (!same_values(v, file.read(p).value())) fail(name + " value");
                  if (!same_bits(m1, file.read(P + p).value().reshape(m1.shape()))) fail(name + " exp_avg");
                  if (!same_bits(m2, file.read(2 * P + p).value().reshape(m2.shape()))) fail(name + " exp_avg_sq");
                }
                HYD_RETURN_IF_ERROR(t.run());
                HYD_RETURN_IF_ERROR(t.save_checkpoint(dir2).status());
                for (size_t p = 0; p < P; ++p) {
                  HYD_ASSIGN_OR_RETURN(core::Tensor v,
                                       t.gather_parameter(file.tensors()[p].name, false));
                  if (comm.rank() == 0) held.emplace_back(file.tensors()[p].name, v);
                }
                if (comm.rank() == 0) continued = losses_of(t.history());
                return core::Status::ok();
              }).is_ok());
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
  ASSERT_EQ(continued.size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_NEAR(continued[s], reference[s + 2], 2e-5 * reference[s + 2]) << "step " << s + 3;
  }
  // One rank with one strategy (the optimizer aliases the runtime's tensors) loads it too.
  ASSERT_TRUE(on_thread_ranks(1, distributed_config("[[(1, 1, 1)]]", {}),
                              [&](comm::Communicator&, DistributedTrainer& t) {
                                HYD_RETURN_IF_ERROR(t.load_checkpoint(dir1));
                                for (size_t p = 0; p < file.num_params(); ++p) {
                                  const std::string& name = file.tensors()[p].name;
                                  HYD_ASSIGN_OR_RETURN(core::Tensor v, t.gather_parameter(name, false));
                                  HYD_ASSIGN_OR_RETURN(core::Tensor m2, t.gather_moment(name, true));
                                  if (!same_values(v, file.read(p).value())) fail(name + " aliased value");
                                  if (!same_bits(m2, file.read(2 * file.num_params() + p).value().reshape(m2.shape()))) {
                                    fail(name + " aliased exp_avg_sq");
                                  }
                                }
                                HYD_ASSIGN_OR_RETURN(StepMetrics m, t.step());
                                if (std::abs(m.loss - reference[2]) > 2e-5 * reference[2]) {
                                  fail(fmt::format("aliased step 3 loss {} vs {}", m.loss, reference[2]));
                                }
                                return core::Status::ok();
                              })
                  .is_ok());
  for (size_t i = 0; i < std::min<size_t>(failures.size(), 10); ++i) ADD_FAILURE() << failures[i];
  auto back = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(back->load_checkpoint(dir2).is_ok());
  EXPECT_EQ(back->steps_done(), 5);
  ASSERT_EQ(held.size(), back->params().all().size());
  for (size_t p = 0; p < held.size(); ++p) {
    EXPECT_TRUE(same_values(held[p].second, back->params().all()[p].value)) << held[p].first;
  }
  std::filesystem::remove_all(dir1);
  std::filesystem::remove_all(dir2);
}

}  // namespace
}  // namespace hydraulis::train
