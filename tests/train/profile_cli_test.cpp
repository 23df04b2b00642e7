// End to end through the real binary: `hydraulis profile` of (1, 1, 1) for the tiny model on the
// CPU (3 lengths × 1 repeat), `hydraulis build-space` on it, the space loading with
// planner::SchemeSpace and accepted by `hydraulis train --scheme-space`; and the too-few-lengths
// error of a 2-length profile. Docs: docs/profiling.md.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/json.h"
#include "planner/profile.h"
#include "planner/scheme_space.h"
#include "train_test_util.h"

namespace hydraulis::train {
namespace {

std::string binary() {
  const char* dir = std::getenv("HYD_BINARY_DIR");
  return (dir != nullptr ? std::string(dir) : std::string("build")) + "/bin/hydraulis";
}

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr
};

CommandResult run_hydraulis(const std::string& args, const std::string& log) {
  CommandResult r;
  std::ostringstream command;  // (no chained operator+: GCC 12 warns falsely, -Wrestrict)
  command << '"' << binary() << "\" " << args << " > \"" << log << "\" 2>&1";
  r.status = std::system(command.str().c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

// `hydraulis build-space` on a fresh profile. Timing never decides a test (STYLE.md): when this
// loaded machine's medians are too noisy for the fit (the documented errors), the times are
// replaced by a rising series of the same shape (memory, ranks and lengths stay measured) and
// build-space runs again.
CommandResult build_space(const std::string& profile, const std::string& space,
                          const std::string& log) {
  const std::string args = "build-space --profile " + profile + " --out " + space;
  CommandResult r = run_hydraulis(args, log);
  const bool noisy = r.output.find("falls from") != std::string::npos ||
                     r.output.find("is not rising") != std::string::npos;
  if (r.status == 0 || !noisy) return r;
  auto json = core::read_json_file(profile);
  EXPECT_TRUE(json.is_ok());
  for (auto& scheme : (*json)["schemes"]) {
    for (auto& point : scheme["points"]) {
      const double s = point["seq_len"].get<double>();
      for (auto& t : point["step_ms"]) t = 1e-4 * s * s + 0.5 * s + 20;
    }
  }
  EXPECT_TRUE(core::write_json_file(profile, *json).is_ok());
  return run_hydraulis(args, log);
}

class ProfileCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/profile_cli_" + std::to_string(getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

TEST_F(ProfileCli, ProfileBuildSpaceTrain) {
  const std::string tiny = "--model tiny --device cpu --schemes \"[(1, 1, 1)]\" --warmup 0 --repeats 1";
  CommandResult profile = run_hydraulis("profile " + tiny + " --min-seq-len 128 --max-seq-len 512 --out " +
                        file("p.json"),
                    file("profile.log"));
  ASSERT_EQ(profile.status, 0) << profile.output;
  EXPECT_NE(profile.output.find("profile (1, 1, 1) [1/1] 512 tokens:"), std::string::npos)
      << profile.output;
  EXPECT_NE(profile.output.find("ETA"), std::string::npos);
  auto p = planner::Profile::load(file("p.json"));
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->model.name, "tiny");
  EXPECT_EQ(p->device_kind, "cpu");
  ASSERT_EQ(p->schemes.size(), 1u);
  const planner::SchemeProfile& s = p->schemes[0];
  ASSERT_EQ(s.points.size(), 3u);
  EXPECT_EQ(s.points[2].seq_len, 512);
  EXPECT_EQ(s.points[0].step_ms.size(), 1u);
  EXPECT_GT(s.points[2].peak_bytes[0], s.ranks[0].total());  // activations on top of the state
  // The tiny model's state on one rank: 7.23M parameters × (8 B strategy + 16 B optimizer).
  EXPECT_EQ(s.ranks[0].layers, 4);

  CommandResult build = build_space(file("p.json"), file("space.json"), file("build.log"));
  ASSERT_EQ(build.status, 0) << build.output;
  EXPECT_NE(build.output.find("(1, 1, 1)"), std::string::npos) << build.output;
  EXPECT_NE(build.output.find("memory regression: B"), std::string::npos) << build.output;
  auto space = planner::SchemeSpace::load(file("space.json"));
  ASSERT_TRUE(space.is_ok()) << space.status().message();
  ASSERT_NE(space->find({1, 1, 1}), nullptr);
  const planner::SchemeCost& cost = *space->find({1, 1, 1});
  EXPECT_TRUE(cost.a >= 0 && cost.b >= 0 && cost.c >= 0);
  EXPECT_GT(cost.a + cost.b, 0);  // rises with the length
  EXPECT_EQ(space->model().hidden, 128);
  EXPECT_GT(space->memory().activation_per_tp.at(1), 0);

  const std::string data = testing::real_dataset(30);
  if (data.empty()) GTEST_SKIP() << "demo corpus missing (scripts/setup.sh makes data/corpora)";
  CommandResult train = run_hydraulis("train --model tiny --data " + data +
                      " --steps 1 --global-token-num 1024 --max-seq-len 256 --strategies "
                      "\"[[(1, 1, 1)]]\" --scheme-space " + file("space.json"),
                  file("train.log"));
  ASSERT_EQ(train.status, 0) << train.output;
  EXPECT_NE(train.output.find("trained 1 steps of tiny"), std::string::npos) << train.output;
}

TEST_F(ProfileCli, TwoLengthsAreTooFewForTheFit) {
  CommandResult profile = run_hydraulis("profile --model tiny --schemes \"[(1, 1, 1)]\" --warmup 0 --repeats 1 "
                    "--min-seq-len 128 --max-seq-len 256 --out " + file("short.json"),
                    file("profile.log"));
  ASSERT_EQ(profile.status, 0) << profile.output;
  CommandResult build = run_hydraulis("build-space --profile " + file("short.json") + " --out " + file("s.json"),
                  file("build.log"));
  EXPECT_NE(build.status, 0);
  EXPECT_NE(build.output.find("scheme (1, 1, 1) has 2 profiled lengths (128, 256); the quadratic "
                              "a·s² + b·s + c needs at least 3"),
            std::string::npos)
      << build.output;
  EXPECT_FALSE(std::filesystem::exists(file("s.json")));
}

// 7b on one rank: 7 billion parameters × 24 bytes (× 11 with --memory-margin 10) fit no host, so
// the scheme is skipped before any allocation, and a space of nothing is refused.
TEST_F(ProfileCli, ModelStateThatDoesNotFitIsAStop) {
  CommandResult profile =
      run_hydraulis("profile --model 7b --schemes \"[(1, 1, 1)]\" --memory-margin 10 --out " +
                        file("big.json"),
                    file("profile.log"));
  ASSERT_EQ(profile.status, 0) << profile.output;
  EXPECT_NE(profile.output.find("profile (1, 1, 1): skipped: rank 0 needs"), std::string::npos)
      << profile.output;
  auto p = planner::Profile::load(file("big.json"));
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  ASSERT_EQ(p->schemes.size(), 1u);
  EXPECT_EQ(p->schemes[0].stopped_at, 128);
  EXPECT_TRUE(p->schemes[0].points.empty());
  EXPECT_NE(p->schemes[0].stop_reason.find("for the model state alone"), std::string::npos);
  CommandResult build =
      run_hydraulis("build-space --profile " + file("big.json") + " --out " + file("b.json"),
                    file("build.log"));
  EXPECT_NE(build.status, 0);
  EXPECT_NE(build.output.find("no scheme of"), std::string::npos) << build.output;
}

TEST_F(ProfileCli, SchemeNeedingMoreRanksIsRefused) {
  CommandResult profile = run_hydraulis("profile --model tiny --schemes \"[(1, 2, 1)]\" --out " + file("x.json"),
                    file("profile.log"));
  EXPECT_NE(profile.status, 0);
  EXPECT_NE(profile.output.find("scheme (1, 2, 1) needs 2 ranks but this run has 1: start the "
                                "profile with mpirun -np 2"),
            std::string::npos)
      << profile.output;
}

// Under mpirun -np 2 (ctest entry train_profile_cli_mpi_test, label mpi): the default schemes of
// two ranks, (1, 1, 1) among them with rank 1 waiting, then a space from all four.
TEST_F(ProfileCli, DefaultSchemesOfTwoRanksUnderMpirun) {
  const char* mpiexec = std::getenv("HYD_MPIEXEC");
  if (mpiexec == nullptr) GTEST_SKIP() << "HYD_MPIEXEC not set (the mpi-labelled entry sets it)";
  const std::string command = std::string("\"") + mpiexec + "\" -np 2 --oversubscribe \"" +
                              binary() + "\" profile --model tiny --warmup 0 --repeats 1 " +
                              "--min-seq-len 128 --max-seq-len 512 --out " + file("p2.json") +
                              " > \"" + file("mpi.log") + "\" 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream in(file("mpi.log"));
  std::stringstream log;
  log << in.rdbuf();
  ASSERT_EQ(status, 0) << log.str();
  auto p = planner::Profile::load(file("p2.json"));
  ASSERT_TRUE(p.is_ok()) << p.status().message();
  EXPECT_EQ(p->ranks, 2);
  ASSERT_EQ(p->schemes.size(), 4u);
  const planner::Scheme expected[] = {{1, 1, 1}, {1, 1, 2}, {1, 2, 1}, {2, 1, 1}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(p->schemes[i].scheme, expected[i]);
    EXPECT_EQ(p->schemes[i].points.size(), 3u);
    EXPECT_EQ(p->schemes[i].ranks.size(), size_t(expected[i].gpus()));
  }
  // pp 2: two micro-batches per step, three 1F1B slots; the second stage holds the LM head.
  EXPECT_EQ(p->schemes[1].slots(), 3);
  EXPECT_EQ(p->schemes[1].ranks[1].stage, 1);
  CommandResult build = build_space(file("p2.json"), file("space2.json"), file("b.log"));
  ASSERT_EQ(build.status, 0) << build.output;
  auto space = planner::SchemeSpace::load(file("space2.json"));
  ASSERT_TRUE(space.is_ok()) << space.status().message();
  EXPECT_EQ(space->schemes().size(), 4u);
  ASSERT_NE(space->find({2, 1, 1}), nullptr);
  EXPECT_EQ(space->memory().activation_per_tp.size(), 2u);
}

}  // namespace
}  // namespace hydraulis::train
