// ThreadComm: every op and dtype for worlds of 1-4 ranks (comm_checks.h), splits, ring and
// send-before-recv exchanges, timeouts naming rank/peer/op, abort propagation, argument mismatch,
// and the reduce helpers. Backend: src/comm/thread_comm.cpp.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>

#include "comm/reduce.h"
#include "comm/thread_comm.h"
#include "comm_checks.h"

namespace hydraulis::comm {
namespace {

using core::DType;
using core::Status;
using testing::filled;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

CommOptions test_options() {
  CommOptions options;
  options.timeout_s = 20;  // a broken op fails the test instead of hanging it
  return options;
}

class ThreadWorldTest : public ::testing::TestWithParam<int> {};

TEST_P(ThreadWorldTest, EveryOpAndDtype) {
  Status s = run_on_threads(GetParam(), [](Communicator& comm) { testing::check_all_ops(comm); },
                            test_options());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST_P(ThreadWorldTest, DescriptionAndDevice) {
  const int n = GetParam();
  auto ranks = make_thread_world(n);
  ASSERT_EQ(static_cast<int>(ranks.size()), n);
  for (int r = 0; r < n; ++r) {
    EXPECT_EQ(ranks[r]->rank(), r);
    EXPECT_EQ(ranks[r]->size(), n);
    EXPECT_EQ(ranks[r]->device(), core::Device::kCpu);
    EXPECT_EQ(ranks[r]->description(), fmt::format("thread rank {}/{}", r, n));
  }
}

TEST_P(ThreadWorldTest, BarrierSeparatesPhases) {
  const int n = GetParam();
  std::atomic<int> before{0};
  Status s = run_on_threads(n, [&](Communicator& comm) {
    before.fetch_add(1);
    HYD_EXPECT_OK(comm.barrier());
    EXPECT_EQ(before.load(), n) << comm.description();
  }, test_options());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

INSTANTIATE_TEST_SUITE_P(Sizes, ThreadWorldTest, ::testing::Values(1, 2, 3, 4));

TEST(ThreadCommTest, PairSendsBeforeReceives) {
  // Pipeline-style: both neighbours send several tensors, then receive them.
  Status s = run_on_threads(2, [](Communicator& comm) {
    const int peer = 1 - comm.rank();
    for (int k = 0; k < 5; ++k) {
      auto t = filled(DType::kF32, 3, [&](int64_t i) { return comm.rank() * 1000 + k * 10 + i; });
      HYD_EXPECT_OK(comm.send(t, peer));
    }
    for (int k = 0; k < 5; ++k) {
      auto t = core::Tensor::zeros({3}, DType::kF32);
      HYD_EXPECT_OK(comm.recv(t, peer));
      testing::expect_values(t, [&](int64_t i) { return peer * 1000 + k * 10 + i; }, "message");
    }
  }, test_options());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST(ThreadCommTest, RecvTimeoutNamesRankPeerAndOp) {
  CommOptions options;
  options.timeout_s = 0.1;
  Status rank0_error;
  double elapsed = 0;
  Status s = run_on_threads(2, [&](Communicator& comm) {
    if (comm.rank() != 0) return;  // rank 1 never sends
    auto t = core::Tensor::zeros({4}, DType::kF32);
    auto start = Clock::now();
    rank0_error = comm.recv(t, 1);
    elapsed = seconds_since(start);
  }, options);
  ASSERT_FALSE(rank0_error.is_ok());
  EXPECT_LT(elapsed, 0.3);
  EXPECT_GE(elapsed, 0.09);
  const std::string& m = rank0_error.message();
  EXPECT_NE(m.find("thread rank 0/2"), std::string::npos) << m;
  EXPECT_NE(m.find("recv"), std::string::npos) << m;
  EXPECT_NE(m.find("peer 1"), std::string::npos) << m;
  EXPECT_NE(m.find("timed out after 0.1 s"), std::string::npos) << m;
  // The timeout aborted the world, so run_on_threads reports it.
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.to_string();
}

TEST(ThreadCommTest, CollectiveTimeoutNamesMissingRanks) {
  CommOptions options;
  options.timeout_s = 0.1;
  Status error;
  Status s = run_on_threads(3, [&](Communicator& comm) {
    if (comm.rank() == 2) return;  // rank 2 never joins
    auto t = core::Tensor::zeros({2}, DType::kI32);
    Status e = comm.all_reduce(t);
    if (comm.rank() == 0) error = e;
  }, options);
  ASSERT_FALSE(error.is_ok());
  EXPECT_NE(error.message().find("all_reduce"), std::string::npos) << error.message();
  EXPECT_NE(error.message().find("peer rank(s) 2"), std::string::npos) << error.message();
  EXPECT_FALSE(s.is_ok());
}

TEST(ThreadCommTest, FailedRankAbortsPendingWaitsPromptly) {
  CommOptions options;
  options.timeout_s = 60;  // far longer than the test may take: only the abort can end the waits
  std::atomic<int> aborted_waits{0};
  auto start = Clock::now();
  Status s = run_on_threads(3, [&](Communicator& comm) {
    if (comm.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      throw std::runtime_error("boom in rank 1");
    }
    auto t = core::Tensor::zeros({2}, DType::kF32);
    Status e = comm.rank() == 0 ? comm.recv(t, 1) : comm.all_reduce(t);
    if (!e.is_ok() && e.message().find("world aborted") != std::string::npos &&
        e.message().find("boom in rank 1") != std::string::npos) {
      aborted_waits.fetch_add(1);
    }
  }, options);
  EXPECT_LT(seconds_since(start), 2.0);
  EXPECT_EQ(aborted_waits.load(), 2);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("rank 1 failed"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("boom in rank 1"), std::string::npos) << s.to_string();
}

TEST(ThreadCommTest, FailedStatusAbortsSubGroupWaits) {
  // The failing rank is not in the sub-group the others wait in: the abort still reaches them.
  CommOptions options;
  options.timeout_s = 60;
  auto start = Clock::now();
  Status s = run_on_threads(3, [&](Communicator& comm) -> Status {
    HYD_ASSIGN_OR_RETURN(auto group, comm.split(comm.rank() == 2 ? -1 : 0, 0));
    if (comm.rank() == 2) return core::invalid_argument("rank 2 gives up");
    HYD_RETURN_IF_ERROR(group->barrier());  // rank 0 and 1 meet here
    auto t = core::Tensor::zeros({1}, DType::kF32);
    return comm.all_reduce(t);  // rank 2 never comes
  }, options);
  EXPECT_LT(seconds_since(start), 2.0);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("rank 2 failed"), std::string::npos) << s.to_string();
  EXPECT_NE(s.message().find("rank 2 gives up"), std::string::npos) << s.to_string();
}

TEST(ThreadCommTest, MismatchedArgumentsFailOnEveryRank) {
  std::atomic<int> failures{0};
  Status s = run_on_threads(3, [&](Communicator& comm) {
    auto t = core::Tensor::zeros({comm.rank() == 1 ? 5 : 4}, DType::kF32);
    Status e = comm.all_reduce(t);
    if (!e.is_ok() && e.message().find("differ across ranks") != std::string::npos) failures++;
    // A wrongly sized output on one rank fails the collective on every rank.
    auto piece = core::Tensor::zeros({comm.rank() == 0 ? 3 : 2}, DType::kI32);
    auto gathered = core::Tensor::zeros({6}, DType::kI32);
    Status g = comm.all_gather(piece, gathered);
    if (!g.is_ok() && g.message().find("failed on rank 0") != std::string::npos) failures++;
    // Afterwards the world still works.
    auto ok = filled(DType::kI32, 1, [&](int64_t) { return comm.rank(); });
    HYD_EXPECT_OK(comm.all_reduce(ok));
    testing::expect_values(ok, [](int64_t) { return 3; }, "after mismatch");
  }, test_options());
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(failures.load(), 6);
}

TEST(ThreadCommTest, RejectsBadPeersAndDtypes) {
  auto ranks = make_thread_world(2);
  auto t = core::Tensor::zeros({2}, DType::kF32);
  Status s = ranks[0]->send(t, 2);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("peer 2"), std::string::npos) << s.message();
  auto recv_size = core::Tensor::zeros({3}, DType::kF32);
  HYD_EXPECT_OK(ranks[1]->send(t, 0));
  Status r = ranks[0]->recv(recv_size, 1);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.message().find("expected f32[3]"), std::string::npos) << r.message();
}

TEST(ReduceTest, Bf16AccumulatesInF32AndRoundsOnce) {
  // 256 + 1 + 1 in bf16 step by step stays 256 (1 is below half an ulp of 256); in f32 it is 258.
  core::BFloat16 a(256.0f), b(1.0f), c(1.0f), out;
  const void* inputs[] = {&a, &b, &c};
  HYD_EXPECT_OK(reduce_in_order(DType::kBF16, ReduceOp::kSum, inputs, &out, 1));
  EXPECT_EQ(static_cast<float>(out), 258.0f);
  int64_t x = 5, y = -7, m = 0;
  const void* ints[] = {&x, &y};
  HYD_EXPECT_OK(reduce_in_order(DType::kI64, ReduceOp::kMax, ints, &m, 1));
  EXPECT_EQ(m, 5);
  EXPECT_FALSE(reduce_in_order(DType::kU8, ReduceOp::kSum, ints, &m, 1).is_ok());
}

TEST(ReduceTest, ChunkRanges) {
  // n = 10 in 4 parts: [0,3) [3,6) [6,8) [8,10).
  const int64_t begins[] = {0, 3, 6, 8}, ends[] = {3, 6, 8, 10};
  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(chunk_range(10, 4, c).begin, begins[c]);
    EXPECT_EQ(chunk_range(10, 4, c).end, ends[c]);
  }
  EXPECT_EQ(chunk_range(2, 4, 3).size(), 0);
}

}  // namespace
}  // namespace hydraulis::comm
