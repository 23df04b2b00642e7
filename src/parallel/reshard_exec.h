// Executes a ReshardPlan (parallel/reshard.h) over a Communicator: every rank packs the rectangles
// it sends to each peer into one buffer, all transfers of the step run as one grouped
// point-to-point call, and every rank unpacks what it received in increasing source rank (its
// own local copies at its own rank's turn), so accumulated sums have a fixed order on every run.
// Tensors are the local tensors of the two layouts on this rank (f32, on the backend's device;
// rows × cols elements); blocks move through Ops::copy_block, so the same code runs on the CPU
// (MPI, threads) and on GPUs (NCCL). Propagation bytes per call are returned for the metrics and the bench.
// Tests: tests/parallel/reshard_exec_test.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/ops.h"
#include "parallel/reshard.h"

namespace hydraulis::parallel {

struct ReshardStats {
  int64_t elements_sent = 0;      // to other ranks
  int64_t elements_received = 0;  // from other ranks
  int64_t elements_local = 0;     // copied inside this rank
};

// `src` / `dst`: this rank's local tensors of the plan's source / destination layout, in layout
// order. kAssign overwrites the covered dst elements; kAccumulate adds into dst (zero it first).
core::StatusOr<ReshardStats> run_reshard(const ReshardPlan& plan, comm::Communicator& world,
                                         const model::Ops& ops,
                                         const std::vector<core::Tensor>& src,
                                         std::vector<core::Tensor>& dst);

}  // namespace hydraulis::parallel
