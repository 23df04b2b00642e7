// NcclComm: the Communicator over NCCL for GPU tensors (bf16, f32, i32; also f64, i64, f16, u8
// where no reduction is needed), bootstrapped from an MpiComm. Ops are stream-ordered on
// stream(): a call returns once the op is enqueued; synchronize() (and barrier()) wait for the
// stream, polling against CommOptions::timeout_s and aborting the NCCL communicator on timeout.
// Docs: docs/comm.md. Tests: tests/comm/nccl_comm_test.cpp (labels gpu, multigpu).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi_comm.h"

struct ncclComm;  // nccl.h: typedef struct ncclComm* ncclComm_t (kept out of this header)

namespace hydraulis::comm {

class NcclComm final : public Communicator {
 public:
  // Collective over `bootstrap`: rank 0 makes the ncclUniqueId, `bootstrap` broadcasts it, and
  // every rank joins with its bootstrap rank on CUDA device `cuda_device`. Ops run on `stream`
  // (not owned; nullptr is the legacy default stream).
  static core::StatusOr<std::shared_ptr<NcclComm>> create(MpiComm& bootstrap, int cuda_device,
                                                          cudaStream_t stream,
                                                          CommOptions options = {});
  ~NcclComm() override;  // ncclCommFinalize + ncclCommDestroy; ncclCommAbort when broken

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  core::Device device() const override { return core::Device::kCuda; }
  std::string description() const override;

  core::Status all_reduce(core::Tensor& t, ReduceOp op = ReduceOp::kSum) override;
  core::Status reduce_scatter(const core::Tensor& in, core::Tensor& out,
                              ReduceOp op = ReduceOp::kSum) override;
  core::Status all_gather(const core::Tensor& in, core::Tensor& out) override;
  core::Status broadcast(core::Tensor& t, int root) override;
  // Stream-ordered: the stream blocks until the peer's matching recv runs, so two ranks that
  // both send before receiving must put the pair in one group_p2p (unlike ThreadComm/MpiComm).
  core::Status send(const core::Tensor& t, int peer) override;
  core::Status recv(core::Tensor& t, int peer) override;
  core::Status group_p2p(std::span<P2POp> ops) override;
  // A one-element all_reduce followed by synchronize().
  core::Status barrier() override;
  core::StatusOr<std::shared_ptr<Communicator>> split(int color, int key) override;

  // Waits (bounded by the timeout) until every op enqueued so far on stream() has finished.
  core::Status synchronize();
  cudaStream_t stream() const { return stream_; }
  void set_stream(cudaStream_t stream) { stream_ = stream; }
  int cuda_device() const { return cuda_device_; }

  NcclComm(ncclComm* comm, int cuda_device, cudaStream_t stream, CommOptions options,
           std::string label);

 private:
  core::Status start(const char* op);
  core::Status finish(int result, const char* statement, const char* op, const std::string& peer);
  core::Status await_comm(ncclComm* comm, const char* op, const std::string& peer);
  core::Status fail(core::Status error);

  ncclComm* comm_ = nullptr;
  int cuda_device_ = 0;
  cudaStream_t stream_ = nullptr;
  CommOptions options_;
  std::string label_;
  int rank_ = 0;
  int size_ = 1;
  void* scratch_ = nullptr;  // 4 device bytes for barrier()
  core::Status broken_;      // set on timeout or NCCL error; the communicator is aborted
  std::vector<std::string> enqueued_;  // ops since the last synchronize, for timeout messages
};

}  // namespace hydraulis::comm
