// The backend-independent checks of a CPU Communicator, run by comm_test.cpp on every rank
// thread of a ThreadComm world and by mpi_comm_test.cpp on every MPI rank. Each check runs the
// op on this rank and asserts the exact expected values (data from comm_test_util.h).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "comm/communicator.h"
#include "comm_test_util.h"

namespace hydraulis::comm::testing {

#define HYD_EXPECT_OK(expr)                                       \
  do {                                                            \
    ::hydraulis::core::Status hyd_s_ = (expr);                    \
    ASSERT_TRUE(hyd_s_.is_ok()) << #expr << ": " << hyd_s_.to_string(); \
  } while (0)

inline const std::vector<core::DType>& all_dtypes() {
  static const std::vector<core::DType> dtypes = {core::DType::kF32, core::DType::kF64,
                                                  core::DType::kBF16, core::DType::kI32,
                                                  core::DType::kI64};
  return dtypes;
}

// Sum and max over ranks of rank_value, computed in rank order in double (exact by construction).
inline double expected_sum(core::DType dtype, int size, int64_t i) {
  double s = 0;
  for (int r = 0; r < size; ++r) s += rank_value(dtype, r, i);
  return s;
}
inline double expected_max(core::DType dtype, int size, int64_t i) {
  double m = rank_value(dtype, 0, i);
  for (int r = 1; r < size; ++r) m = std::max(m, rank_value(dtype, r, i));
  return m;
}

inline void check_all_reduce(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  const std::string ctx = std::string("all_reduce ") + dtype_label(dtype) + " " + comm.description();
  for (int64_t len : {int64_t{1}, int64_t{10}, int64_t{37}}) {
    auto t = filled(dtype, len, [&](int64_t i) { return rank_value(dtype, r, i); });
    HYD_EXPECT_OK(comm.all_reduce(t, ReduceOp::kSum));
    expect_values(t, [&](int64_t i) { return expected_sum(dtype, n, i); }, ctx + " sum");
    auto m = filled(dtype, len, [&](int64_t i) { return rank_value(dtype, r, i); });
    HYD_EXPECT_OK(comm.all_reduce(m, ReduceOp::kMax));
    expect_values(m, [&](int64_t i) { return expected_max(dtype, n, i); }, ctx + " max");
  }
}

inline void check_reduce_scatter(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  const int64_t chunk = 5;
  const std::string ctx = std::string("reduce_scatter ") + dtype_label(dtype) + " " + comm.description();
  auto in = filled(dtype, n * chunk, [&](int64_t i) { return rank_value(dtype, r, i); });
  auto out = core::Tensor::zeros({chunk}, dtype);
  HYD_EXPECT_OK(comm.reduce_scatter(in, out, ReduceOp::kSum));
  expect_values(out, [&](int64_t i) { return expected_sum(dtype, n, r * chunk + i); }, ctx + " sum");
  HYD_EXPECT_OK(comm.reduce_scatter(in, out, ReduceOp::kMax));
  expect_values(out, [&](int64_t i) { return expected_max(dtype, n, r * chunk + i); }, ctx + " max");
}

inline void check_all_gather(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  const int64_t chunk = 7;
  auto in = filled(dtype, chunk, [&](int64_t i) { return rank_value(dtype, r, i); });
  auto out = core::Tensor::zeros({n * chunk}, dtype);
  HYD_EXPECT_OK(comm.all_gather(in, out));
  expect_values(out, [&](int64_t i) { return rank_value(dtype, static_cast<int>(i / chunk), i % chunk); },
                std::string("all_gather ") + dtype_label(dtype) + " " + comm.description());
}

inline void check_broadcast(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  for (int root = 0; root < n; ++root) {
    auto t = filled(dtype, 9, [&](int64_t i) { return rank_value(dtype, r, i); });
    HYD_EXPECT_OK(comm.broadcast(t, root));
    expect_values(t, [&](int64_t i) { return rank_value(dtype, root, i); },
                  std::string("broadcast ") + dtype_label(dtype) + " root " +
                      std::to_string(root) + " " + comm.description());
  }
}

// Every rank sends two messages to its right neighbour before receiving from its left one (both
// sides of every pair send first): buffered sends make this complete, in FIFO order.
inline void check_send_before_recv(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  auto a = filled(dtype, 6, [&](int64_t i) { return rank_value(dtype, r, i); });
  auto b = filled(dtype, 6, [&](int64_t i) { return rank_value(dtype, r, i + 1); });
  HYD_EXPECT_OK(comm.send(a, right));
  HYD_EXPECT_OK(comm.send(b, right));
  set_value(a, 0, 0);  // the send took a copy: changing the source afterwards changes nothing
  auto got_a = core::Tensor::zeros({6}, dtype);
  auto got_b = core::Tensor::zeros({6}, dtype);
  HYD_EXPECT_OK(comm.recv(got_a, left));
  HYD_EXPECT_OK(comm.recv(got_b, left));
  const std::string ctx = std::string("send/recv ") + dtype_label(dtype) + " " + comm.description();
  expect_values(got_a, [&](int64_t i) { return rank_value(dtype, left, i); }, ctx + " first");
  expect_values(got_b, [&](int64_t i) { return rank_value(dtype, left, i + 1); }, ctx + " second");
}

// Ring exchange in one group: send to both neighbours, receive from both.
inline void check_group_p2p_ring(Communicator& comm, core::DType dtype) {
  const int r = comm.rank(), n = comm.size();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  std::vector<P2POp> ops(4);
  ops[0] = {P2POp::Kind::kRecv, left, core::Tensor::zeros({4}, dtype)};
  ops[1] = {P2POp::Kind::kSend, right, filled(dtype, 4, [&](int64_t i) { return rank_value(dtype, r, i); })};
  ops[2] = {P2POp::Kind::kRecv, right, core::Tensor::zeros({3}, dtype)};
  ops[3] = {P2POp::Kind::kSend, left, filled(dtype, 3, [&](int64_t i) { return rank_value(dtype, r, i + 2); })};
  HYD_EXPECT_OK(comm.group_p2p(ops));
  const std::string ctx = std::string("group_p2p ") + dtype_label(dtype) + " " + comm.description();
  expect_values(ops[0].tensor, [&](int64_t i) { return rank_value(dtype, left, i); }, ctx + " from left");
  expect_values(ops[2].tensor, [&](int64_t i) { return rank_value(dtype, right, i + 2); }, ctx + " from right");
}

// Two splits: by parity with keys reversing the order, and one where rank 0 joins no group.
inline void check_split(Communicator& comm) {
  const int r = comm.rank(), n = comm.size();
  auto sub = comm.split(r % 2, -r);
  ASSERT_TRUE(sub.is_ok()) << sub.status().to_string();
  std::shared_ptr<Communicator> group = *sub;
  ASSERT_NE(group, nullptr);
  std::vector<int> members;  // old ranks of this parity, in new-rank order (descending)
  for (int q = n - 1; q >= 0; --q) {
    if (q % 2 == r % 2) members.push_back(q);
  }
  EXPECT_EQ(group->size(), static_cast<int>(members.size()));
  EXPECT_EQ(group->rank(),
            static_cast<int>(std::find(members.begin(), members.end(), r) - members.begin()));
  // Each member contributes its old rank: the sum names the members; the gather their order.
  auto t = filled(core::DType::kI64, 1, [&](int64_t) { return r; });
  HYD_EXPECT_OK(group->all_reduce(t));
  double want = 0;
  for (int q : members) want += q;
  expect_values(t, [&](int64_t) { return want; }, "split all_reduce " + group->description());
  auto mine = filled(core::DType::kI32, 1, [&](int64_t) { return r; });
  auto order = core::Tensor::zeros({group->size()}, core::DType::kI32);
  HYD_EXPECT_OK(group->all_gather(mine, order));
  expect_values(order, [&](int64_t i) { return members[i]; }, "split all_gather " + group->description());

  auto none = comm.split(r == 0 ? -1 : 0, r);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  if (r == 0) {
    EXPECT_EQ(*none, nullptr);
  } else {
    ASSERT_NE(*none, nullptr);
    EXPECT_EQ((*none)->size(), n - 1);
    EXPECT_EQ((*none)->rank(), r - 1);
    HYD_EXPECT_OK((*none)->barrier());
    // A split of a split: singletons.
    auto single = (*none)->split((*none)->rank(), 0);
    ASSERT_TRUE(single.is_ok()) << single.status().to_string();
    EXPECT_EQ((*single)->size(), 1);
    auto one = filled(core::DType::kF32, 2, [&](int64_t i) { return r + i; });
    HYD_EXPECT_OK((*single)->all_reduce(one));
    expect_values(one, [&](int64_t i) { return r + i; }, "singleton all_reduce");
  }
  HYD_EXPECT_OK(comm.barrier());
}

// f32 data whose sum depends on the order of additions: every rank must get the bits of the
// sum taken in rank order, ((x0 + x1) + x2) + ...
inline void check_rank_order_sum(Communicator& comm) {
  const int r = comm.rank(), n = comm.size();
  auto x = [](int q, int64_t i) { return (q % 2 ? 1.0f : 1.0e8f) * (q % 4 >= 2 ? -1.0f : 1.0f) + 0.1f * static_cast<float>(i + q); };
  auto t = core::Tensor::empty({16}, core::DType::kF32);
  for (int64_t i = 0; i < 16; ++i) t.data<float>()[i] = x(r, i);
  HYD_EXPECT_OK(comm.all_reduce(t));
  for (int64_t i = 0; i < 16; ++i) {
    float want = x(0, i);
    for (int q = 1; q < n; ++q) want += x(q, i);
    ASSERT_EQ(t.data<float>()[i], want) << "element " << i << " on " << comm.description();
  }
}

inline void check_all_ops(Communicator& comm) {
  for (core::DType dtype : all_dtypes()) {
    check_all_reduce(comm, dtype);
    check_reduce_scatter(comm, dtype);
    check_all_gather(comm, dtype);
    check_broadcast(comm, dtype);
    check_send_before_recv(comm, dtype);
    check_group_p2p_ring(comm, dtype);
  }
  check_rank_order_sum(comm);
  check_split(comm);
  HYD_EXPECT_OK(comm.barrier());
}

}  // namespace hydraulis::comm::testing
