// Communicator: the one interface of every collective and point-to-point transfer of Hydraulis,
// over tensors of one device. Implementations: ThreadComm (in-process, one thread per rank, for
// unit tests), MpiComm (CPU tensors, OpenMPI), NcclComm (GPU tensors, bootstrapped through MPI).
// Every call returns Status; waits have a deadline (CommOptions::timeout_s) and a timeout or a
// dead peer is an error naming this rank, the peer and the op. Docs: docs/comm.md.
// Tests: tests/comm/comm_test.cpp (threads), tests/comm/mpi_comm_test.cpp (mpirun).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hydraulis::comm {

enum class ReduceOp { kSum, kMax };

struct CommOptions {
  double timeout_s = 600;  // longest wait of any one call before it fails
};

// One transfer of a grouped point-to-point call.
struct P2POp {
  enum class Kind { kSend, kRecv } kind = Kind::kSend;
  int peer = 0;               // rank in this communicator
  core::Tensor tensor;        // sent from / received into (shape and dtype agreed by both sides)
};

// Receives posted by Communicator::post_recvs, completed by wait().
class PendingRecvs {
 public:
  virtual ~PendingRecvs() = default;
  // Returns when every receive has arrived (or the deadline passed: an error naming the peers).
  virtual core::Status wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual core::Device device() const = 0;  // where the tensors it carries live
  virtual std::string description() const = 0;  // "mpi rank 3/8", "nccl rank 0/2 (group tp)"

  // In place over every rank's `t` (same shape and dtype everywhere). Sums in rank order
  // where the backend controls the order (threads, MPI on CPU), so results are deterministic.
  virtual core::Status all_reduce(core::Tensor& t, ReduceOp op = ReduceOp::kSum) = 0;
  // in: size()·n elements on every rank; out: n elements, rank r gets the reduction of chunk r.
  virtual core::Status reduce_scatter(const core::Tensor& in, core::Tensor& out,
                                      ReduceOp op = ReduceOp::kSum) = 0;
  // in: n elements on every rank; out: size()·n elements, chunk r from rank r.
  virtual core::Status all_gather(const core::Tensor& in, core::Tensor& out) = 0;
  virtual core::Status broadcast(core::Tensor& t, int root) = 0;
  virtual core::Status send(const core::Tensor& t, int peer) = 0;
  virtual core::Status recv(core::Tensor& t, int peer) = 0;
  // Every op of the group in flight together (no ordering deadlock); returns when all are done.
  virtual core::Status group_p2p(std::span<P2POp> ops) = 0;
  virtual core::Status barrier() = 0;
  // Split-phase point-to-point, for overlapping transfers with compute (parallel/reshard_overlap.h).
  // True where send() never waits for the receiver (its bytes are copied into a buffer): there a
  // rank may send before its peer posts the receive, and receives may be posted early.
  virtual bool buffered_sends() const { return false; }
  // Posts the receives (every op a kRecv) and returns at once; the tensors are written by the
  // time PendingRecvs::wait() returns. Messages between two ranks match in the order they were
  // sent and posted; pendings of one peer are waited in the order they were posted. Only where
  // buffered_sends(); elsewhere an Unimplemented error.
  virtual core::StatusOr<std::unique_ptr<PendingRecvs>> post_recvs(std::span<const P2POp> recvs);

  // Collective over this communicator: ranks passing the same `color` form a new communicator,
  // ordered by (key, rank). color < 0: this rank joins none (returns nullptr).
  virtual core::StatusOr<std::shared_ptr<Communicator>> split(int color, int key) = 0;
};

}  // namespace hydraulis::comm
