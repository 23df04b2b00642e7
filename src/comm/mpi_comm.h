// MpiComm: the Communicator over OpenMPI for CPU tensors (CPU runs, parity tests, and the
// bootstrap of NcclComm). Every wait is a MPI_Test poll against CommOptions::timeout_s; sends are
// buffered (MPI_Isend of a private copy); sums are reduced in rank order on the owning rank of each
// chunk, so every rank gets the same bits. Docs: docs/comm.md. Tests: tests/comm/mpi_comm_test.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace hydraulis::comm {

struct MpiHandles;   // MPI_Comm and buffered sends (mpi_comm.cpp: keeps mpi.h private)
struct MpiRequests;  // requests of one wait and their statuses (mpi_comm.cpp)

class MpiComm final : public Communicator {
 public:
  ~MpiComm() override;  // waits (up to the timeout) for buffered sends, then frees the MPI_Comm

  int rank() const override { return rank_; }
  int size() const override { return size_; }
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

  // Same as split, typed (NcclComm bootstraps from an MpiComm).
  core::StatusOr<std::shared_ptr<MpiComm>> split_mpi(int color, int key);
  // A new communicator over the same ranks (MPI_Comm_dup): its messages never meet this one's.
  core::StatusOr<std::shared_ptr<MpiComm>> duplicate() { return duplicate(options_); }
  core::StatusOr<std::shared_ptr<MpiComm>> duplicate(const CommOptions& options);
  // Waits for every buffered send of this rank to be received (bounded by the timeout).
  core::Status flush_sends();
  const CommOptions& options() const { return options_; }

  // Wraps `handles` (takes ownership); used by mpi_init_world, split and duplicate.
  MpiComm(std::unique_ptr<MpiHandles> handles, CommOptions options, std::string label);

 private:
  friend class MpiPendingRecvs;
  core::Status start(const char* op);
  core::Status agree(const char* op, const core::Tensor* t, int64_t arg, const core::Status& local);
  enum class OnTimeout { kCancel, kKeep };  // receives can be withdrawn; collectives and sends not
  core::Status wait(MpiRequests& requests, const char* op, const std::string& peer,
                    OnTimeout on_timeout);
  core::Status post_send(const core::Tensor& t, int peer, const char* op);
  core::Status check_p2p(std::span<const P2POp> ops, const char* name) const;
  // Posts the receives among `ops` (their indices into `index`, peers listed for the errors).
  core::Status post_irecvs(std::span<P2POp> ops, const char* name, MpiRequests& r,
                           std::vector<size_t>& index, std::string& peers);
  // Each completed receive got exactly its tensor's bytes.
  core::Status check_received(std::span<const P2POp> ops, const char* name, const MpiRequests& r,
                              const std::vector<size_t>& index) const;
  core::Status reap_sends();

  std::unique_ptr<MpiHandles> handles_;
  CommOptions options_;
  std::string label_;  // "" for the world, " (split color c of ...)" otherwise
  int rank_ = 0;
  int size_ = 1;
  core::Status broken_;  // set by a timeout: every later call fails with it
};

// Initializes MPI (MPI_Init_thread, MPI_THREAD_MULTIPLE requested, MPI_THREAD_SERIALIZED required)
// unless already initialized, and returns a communicator over a duplicate of MPI_COMM_WORLD.
// Without mpirun the process is a singleton world of size 1. Sets core::set_process_rank.
core::StatusOr<std::shared_ptr<MpiComm>> mpi_init_world(int* argc, char*** argv,
                                                        CommOptions options = {});
// MPI_Finalize, after every MpiComm has been destroyed. No-op when MPI is not initialized.
core::Status mpi_finalize();
// Prints `reason` with the rank to stderr and ends every rank (MPI_Abort); for apps/ only.
[[noreturn]] void abort_world(const core::Status& reason);

}  // namespace hydraulis::comm
