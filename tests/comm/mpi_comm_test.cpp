// MpiComm under `mpirun -np 4`: every op and dtype on the world and on sub-communicators of
// 1..size ranks (the same checks as ThreadComm, comm_checks.h), recv timeout naming rank, peer
// and op, argument mismatch failing on every rank. Abort: mpi_abort_main.cpp.
#include <gtest/gtest.h>

#include <chrono>

#include "comm/mpi_comm.h"
#include "comm_checks.h"
#include "mpi_test_world.h"

namespace hydraulis::comm {
namespace {

using core::DType;
using core::Status;
using testing::mpi_test_world;

TEST(MpiCommTest, WorldShape) {
  MpiComm& world = mpi_test_world();
  EXPECT_GE(world.size(), 1);
  EXPECT_EQ(world.description(), fmt::format("mpi rank {}/{}", world.rank(), world.size()));
  EXPECT_EQ(world.device(), core::Device::kCpu);
  // Rank r contributes r: the sum proves every rank took part exactly once.
  auto t = testing::filled(DType::kI64, 1, [&](int64_t) { return world.rank(); });
  HYD_EXPECT_OK(world.all_reduce(t));
  EXPECT_EQ(t.data<int64_t>()[0], int64_t{world.size()} * (world.size() - 1) / 2);
}

TEST(MpiCommTest, EveryOpAndDtypeOnTheWorld) { testing::check_all_ops(mpi_test_world()); }

TEST(MpiCommTest, EveryOpAndDtypeOnSubWorldsOfEverySize) {
  MpiComm& world = mpi_test_world();
  for (int k = 1; k < world.size(); ++k) {
    auto sub = world.split(world.rank() < k ? 0 : -1, world.rank());
    ASSERT_TRUE(sub.is_ok()) << sub.status().to_string();
    if (world.rank() < k) {
      ASSERT_NE(*sub, nullptr);
      ASSERT_EQ((*sub)->size(), k);
      testing::check_all_ops(**sub);
    } else {
      EXPECT_EQ(*sub, nullptr);
    }
    HYD_EXPECT_OK(world.barrier());
  }
}

TEST(MpiCommTest, RecvTimeoutNamesRankPeerAndOp) {
  MpiComm& world = mpi_test_world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  // A communicator of its own with a short timeout: the timeout breaks only that one.
  CommOptions options;
  options.timeout_s = 0.1;
  auto dup = world.duplicate(options);
  ASSERT_TRUE(dup.is_ok()) << dup.status().to_string();
  if (world.rank() == 0) {
    auto t = core::Tensor::zeros({4}, DType::kF32);
    auto start = std::chrono::steady_clock::now();
    Status error = (*dup)->recv(t, 1);  // rank 1 never sends
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_FALSE(error.is_ok());
    EXPECT_LT(elapsed, 0.3);
    EXPECT_GE(elapsed, 0.09);
    const std::string& m = error.message();
    EXPECT_NE(m.find("mpi rank 0/"), std::string::npos) << m;
    EXPECT_NE(m.find("recv"), std::string::npos) << m;
    EXPECT_NE(m.find("peer 1"), std::string::npos) << m;
    EXPECT_NE(m.find("timed out after 0.1 s"), std::string::npos) << m;
    // The broken communicator refuses further calls at once.
    Status later = (*dup)->send(t, 1);
    EXPECT_NE(later.message().find("broken"), std::string::npos) << later.message();
  }
  HYD_EXPECT_OK(world.barrier());
}

TEST(MpiCommTest, MismatchedArgumentsFailOnEveryRank) {
  MpiComm& world = mpi_test_world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto t = core::Tensor::zeros({world.rank() == 1 ? 5 : 4}, DType::kF32);
  Status e = world.all_reduce(t);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.message().find("differ across ranks"), std::string::npos) << e.message();
  // A bad root on one rank fails the broadcast everywhere instead of hanging the others.
  auto b = core::Tensor::zeros({2}, DType::kI32);
  Status bad_root = world.broadcast(b, world.rank() == 0 ? world.size() : 0);
  EXPECT_FALSE(bad_root.is_ok());
  // The world still works afterwards.
  auto ok = testing::filled(DType::kI32, 1, [&](int64_t) { return 1; });
  HYD_EXPECT_OK(world.all_reduce(ok));
  EXPECT_EQ(ok.data<int32_t>()[0], world.size());
}

TEST(MpiCommTest, RejectsBadPeers) {
  MpiComm& world = mpi_test_world();
  auto t = core::Tensor::zeros({2}, DType::kF32);
  Status s = world.send(t, world.size());
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(fmt::format("peer {}", world.size())), std::string::npos) << s.message();
}

}  // namespace
}  // namespace hydraulis::comm
