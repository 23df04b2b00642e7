// Checkpoints under mpirun (2 processes, OpenMPI, CPU tensors): a single-device checkpoint loads
// into 2 ranks (tp2 and dp2 switching), every gathered value and moment equal to the file's, the
// run continues within fp32 tolerance of the single-device run, and the 2-rank checkpoint loads
// back into the single-device trainer with exactly the values the ranks held; and a 2-rank run
// to 5 equals a run to 2 (one rank asks to stop; both checkpoint step 2) resumed to 5, bit for
// bit. The same checks over threads: checkpoint_test.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "comm/mpi_test_world.h"
#include "parity_util.h"
#include "planner/strategy.h"
#include "train/checkpoint.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

std::shared_ptr<comm::Communicator> world() {
  comm::Communicator& w = comm::testing::mpi_test_world();
  return std::shared_ptr<comm::Communicator>(&w, [](comm::Communicator*) {});
}

const data::IndexedDataset& demo_dataset() {
  static data::IndexedDataset dataset = [] {
    const std::string prefix = testing::real_dataset(60);
    HYD_CHECK(!prefix.empty(), "demo data missing: run scripts/setup.sh");
    return data::IndexedDataset::open(prefix).value();
  }();
  return dataset;
}

// A scratch directory every rank names the same (rank 0's pid, broadcast).
std::string shared_dir(const std::string& name) {
  core::Tensor pid = core::Tensor::empty({1}, core::DType::kI64);
  pid.data<int64_t>()[0] = ::getpid();
  HYD_CHECK(world()->broadcast(pid, 0).is_ok(), "broadcast");
  return ::testing::TempDir() + "/mpi_checkpoint_" + name + "_" +
         std::to_string(pid.data<int64_t>()[0]);
}

DistributedConfig config_of(const std::string& strategies, std::vector<int> forced) {
  DistributedConfig config;
  config.trainer = testing::parity_config();
  config.strategies = planner::parse_strategy_list(strategies).value();
  config.forced_strategies = std::move(forced);
  return config;
}

bool same_values(const core::Tensor& f64, const core::Tensor& f32) {
  if (f64.numel() != f32.numel()) return false;
  for (int64_t i = 0; i < f32.numel(); ++i) {
    const float v = float(f64.data<double>()[i]);
    if (std::memcmp(&v, &f32.data<float>()[i], 4) != 0) return false;
  }
  return true;
}

TEST(MpiCheckpoint, SingleDeviceToTwoRanksAndBack) {
  auto w = world();
  ASSERT_EQ(w->size(), 2) << "run under mpirun -np 2";
  const TrainerConfig c = testing::parity_config();
  const std::string dir1 = shared_dir("single"), dir2 = shared_dir("two");
  // Every rank computes the single-device run (the reference); rank 0 writes its step 2.
  auto single = Trainer::create(c, demo_dataset()).value();
  std::vector<double> reference;
  for (int s = 0; s < 5; ++s) {
    reference.push_back(single->step().value().loss);
    if (s == 1 && w->rank() == 0) ASSERT_TRUE(single->save_checkpoint(dir1).is_ok());
  }
  ASSERT_TRUE(w->barrier().is_ok());
  auto file = CheckpointReader::open(*resolve_checkpoint(dir1)).value();
  auto t = DistributedTrainer::create(
               config_of("[[(1, 2, 1)], [(1, 1, 1), (1, 1, 1)]]", {0, 1}), demo_dataset(), w)
               .value();
  ASSERT_TRUE(t->load_checkpoint(dir1).is_ok());
  const size_t P = file.num_params();
  for (size_t p = 0; p < P; ++p) {
    const std::string& name = file.tensors()[p].name;
    core::Tensor v = t->gather_parameter(name, false).value();
    core::Tensor m1 = t->gather_moment(name, false).value();
    core::Tensor m2 = t->gather_moment(name, true).value();
    EXPECT_TRUE(same_values(v, file.read(p).value())) << name;
    EXPECT_EQ(std::memcmp(m1.raw_data(), file.read(P + p)->raw_data(), m1.nbytes()), 0) << name;
    EXPECT_EQ(std::memcmp(m2.raw_data(), file.read(2 * P + p)->raw_data(), m2.nbytes()), 0);
  }
  ASSERT_TRUE(t->run().is_ok());
  ASSERT_EQ(t->history().size(), 3u);
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_NEAR(t->history()[s].loss, reference[s + 2], 2e-5 * reference[s + 2]);
  }
  ASSERT_TRUE(t->save_checkpoint(dir2).is_ok());
  std::vector<core::Tensor> held;
  for (size_t p = 0; p < P; ++p) held.push_back(t->gather_parameter(file.tensors()[p].name, false).value());
  auto back = Trainer::create(c, demo_dataset()).value();
  ASSERT_TRUE(back->load_checkpoint(dir2).is_ok());
  EXPECT_EQ(back->steps_done(), 5);
  for (size_t p = 0; p < P; ++p) {
    EXPECT_TRUE(same_values(held[p], back->params().all()[p].value)) << file.tensors()[p].name;
  }
  ASSERT_TRUE(w->barrier().is_ok());
  if (w->rank() == 0) {
    std::filesystem::remove_all(dir1);
    std::filesystem::remove_all(dir2);
  }
}

TEST(MpiCheckpoint, ResumeIsBitwiseIdenticalAndRanksAgreeOnTheStop) {
  auto w = world();
  DistributedConfig config = config_of("[[(1, 1, 1), (1, 1, 1)], [(1, 2, 1)]]", {0, 1});
  std::vector<double> full, joined;
  {
    auto a = DistributedTrainer::create(config, demo_dataset(), w).value();
    ASSERT_TRUE(a->run().is_ok());
    for (const StepMetrics& m : a->history()) full.push_back(m.loss);
  }
  const std::string dir = shared_dir("resume");
  config.trainer.checkpoint_dir = dir;
  {
    auto b = DistributedTrainer::create(config, demo_dataset(), w).value();
    // Only rank 1 asks, after step 2: both stop there.
    ASSERT_TRUE(b->run({}, [&] { return w->rank() == 1 && b->steps_done() == 2; }).is_ok());
    EXPECT_TRUE(b->stopped());
    EXPECT_EQ(b->steps_done(), 2);
    for (const StepMetrics& m : b->history()) joined.push_back(m.loss);
  }
  {
    auto c = DistributedTrainer::create(config, demo_dataset(), w).value();
    ASSERT_TRUE(c->load_checkpoint(dir).is_ok());
    ASSERT_TRUE(c->run().is_ok());
    for (const StepMetrics& m : c->history()) joined.push_back(m.loss);
  }
  ASSERT_EQ(joined.size(), 5u);
  for (size_t s = 0; s < 5; ++s) EXPECT_EQ(joined[s], full[s]) << "step " << s + 1;
  ASSERT_TRUE(w->barrier().is_ok());
  if (w->rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hydraulis::train
