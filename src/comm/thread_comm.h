// ThreadComm: the in-process Communicator, one thread per rank, over CPU tensors; the backend of
// the unit tests of comm, parallel and optim. Ranks of one world share a Hub (one mutex, one
// condition variable, one abort flag) with every communicator split from it, so a failure on any
// rank wakes every pending wait of the family. Docs: docs/comm.md. Tests: tests/comm/comm_test.cpp.
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <vector>

#include "comm/communicator.h"

namespace hydraulis::comm {

struct ThreadWorld;             // shared state of one communicator's ranks (thread_comm.cpp)
struct ThreadCollectiveEntry;  // what one rank posts to a collective (thread_comm.cpp)

class ThreadComm final : public Communicator {
 public:
  ThreadComm(std::shared_ptr<ThreadWorld> world, int rank);
  ~ThreadComm() override;

  int rank() const override { return rank_; }
  int size() const override;
  core::Device device() const override { return core::Device::kCpu; }
  std::string description() const override;

  core::Status all_reduce(core::Tensor& t, ReduceOp op = ReduceOp::kSum) override;
  core::Status reduce_scatter(const core::Tensor& in, core::Tensor& out,
                              ReduceOp op = ReduceOp::kSum) override;
  core::Status all_gather(const core::Tensor& in, core::Tensor& out) override;
  core::Status broadcast(core::Tensor& t, int root) override;
  core::Status send(const core::Tensor& t, int peer) override;
  core::Status recv(core::Tensor& t, int peer) override;
  core::Status group_p2p(std::span<P2POp> ops) override;
  core::Status barrier() override;
  bool buffered_sends() const override { return true; }
  core::StatusOr<std::unique_ptr<PendingRecvs>> post_recvs(std::span<const P2POp> recvs) override;
  core::StatusOr<std::shared_ptr<Communicator>> split(int color, int key) override;

  // Fails every pending and later call of every rank of this world (and of the worlds split from
  // it, and its parent) with `reason`. The first abort wins; later ones are ignored.
  void abort(const core::Status& reason);
  // The reason of the first abort of this family of worlds, or OK.
  core::Status abort_status() const;

 private:
  using ComputeFn = std::function<core::Status(std::span<const ThreadCollectiveEntry>)>;
  core::Status collective(ThreadCollectiveEntry mine, const ComputeFn& compute);
  core::Status post_send(const core::Tensor& t, int peer, const char* op);
  core::Status check_peer(int peer, const char* op) const;

  std::shared_ptr<ThreadWorld> world_;
  int rank_;
};

// The `size` ranks of a fresh in-process world; element r is rank r. Each must be used by one
// thread at a time (normally thread r).
std::vector<std::shared_ptr<Communicator>> make_thread_world(int size, CommOptions options = {});

// A rank's body: either returns nothing (failures are exceptions, or gtest failures recorded by
// the body itself) or returns a Status (a non-OK one fails the world like an exception).
using RankStatusFn = std::function<core::Status(Communicator&)>;

// Runs `fn` on `size` threads, thread r with rank r of a fresh world, and joins them. The first
// rank to fail (exception or non-OK Status) aborts the world, so the others' waits fail promptly;
// returns that first failure ("rank 2 failed: ..."), or OK.
core::Status run_status_fn_on_threads(int size, const RankStatusFn& fn, CommOptions options = {});

template <typename Fn>
core::Status run_on_threads(int size, Fn&& fn, CommOptions options = {}) {
  if constexpr (std::is_same_v<std::invoke_result_t<Fn&, Communicator&>, core::Status>) {
    return run_status_fn_on_threads(size, RankStatusFn(std::forward<Fn>(fn)), options);
  } else {
    return run_status_fn_on_threads(
        size,
        [&fn](Communicator& comm) {
          fn(comm);
          return core::Status::ok();
        },
        options);
  }
}

}  // namespace hydraulis::comm
