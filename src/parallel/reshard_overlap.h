// Reshard execution overlapped with the pipeline's compute (design.md, "propagate"; issue 6). A
// ReshardPlan's transfers are cut into chunks that follow a stage's use of its parameters:
// - propagation (optimizer layout → strategy layout): every receive is posted and every send
//   leaves as the step starts; the stage waits for chunk g only just before its first forward
//   reads parameter group g, so the later layers' parameters are still travelling while the first
//   layers compute;
// - reduction (strategy layout → optimizer layout): receives are posted as the step starts, and a
//   stage sends chunk g as soon as the step's last backward has finished group g, so the last
//   layers' gradients travel while the earlier layers' backward runs.
// Needs Communicator::buffered_sends() (MPI, threads); elsewhere (NCCL) run_reshard runs the plan
// whole. Sums keep run_reshard's order (source rank, then list order): both give identical bits.
// Docs: docs/parallel.md ("Overlap"). Tests: tests/parallel/reshard_overlap_test.cpp.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/ops.h"
#include "parallel/layout.h"
#include "parallel/reshard.h"
#include "parallel/reshard_exec.h"

namespace hydraulis::parallel {

// Chunks of every rank's local tensors of a strategy layout, from the parameter groups of
// model::StageHooks (0 embedding, 1 + l layer l, L + 1 final norm and LM head):
//   use  = group          (forward order: embedding, layers ascending, head)
//   done = L + 1 − group  (backward order: head, layers descending, embedding)
// The embedding table counts as the head group on a stage without layer 0 (the tied LM head's
// copy on the last stage). Example, L = 4, stage holding layers 2–3 and the untied head:
// layer-2 tensors use 3 / done 2, layer-3 tensors use 4 / done 1, norm and head use 5 / done 0.
struct StageChunks {
  int count = 0;                            // L + 2
  std::vector<std::vector<int>> use, done;  // [rank][local tensor]
};
StageChunks stage_chunks(const Layout& strategy, const std::vector<LogicalParam>& params,
                         int64_t num_layers);
inline int use_chunk(int64_t group) { return int(group); }
inline int done_chunk(int64_t group, int64_t num_layers) { return int(num_layers + 1 - group); }

// One execution of a plan on this rank, in phases: post_receives() → send_through() as chunks
// become ready → wait_through() before using them → finish(). Between two ranks the messages
// are one per non-empty (chunk, direction), in increasing chunk order, so several exchanges may
// share a communicator if every rank posts (and sends) them in the same order.
class ReshardExchange {
 public:
  enum class ChunkBy {
    kDestination,  // a copy's chunk is its destination tensor's (the receiver waits by chunk)
    kSource,       // a copy's chunk is its source tensor's (the sender sends by chunk)
  };
  // `chunk_of[rank][tensor]` in [0, chunks) for the side `by` names; `src` / `dst` as in
  // run_reshard (this rank's local tensors of the plan's two layouts).
  ReshardExchange(const ReshardPlan& plan, const std::vector<std::vector<int>>& chunk_of,
                  int chunks, ChunkBy by, comm::Communicator& comm, const model::Ops& ops,
                  std::vector<core::Tensor> src, std::vector<core::Tensor> dst);
  ~ReshardExchange();

  // Posts every receive of this rank (call before any send of the same exchange anywhere can
  // arrive out of order: at the same point of every rank's step).
  core::Status post_receives();
  // Packs and sends this rank's messages of every chunk ≤ `chunk` not sent yet. Errors are kept
  // and returned by finish() (called from backward hooks, which cannot return one).
  void send_through(int chunk);
  // Completes the receives of every chunk ≤ `chunk`; with kAssign their blocks (and this rank's
  // local copies of those chunks) are in dst when it returns.
  core::Status wait_through(int chunk);
  // Sends and receives the rest and writes dst completely (kAccumulate: every sum, in order).
  core::StatusOr<ReshardStats> finish();

  int chunks() const { return chunks_; }

 private:
  struct Where {
    int chunk = 0;
    int64_t offset = 0;  // in that chunk's message
  };
  // Where each copy of plan.copies[a][b] lies in the (a → b) messages, and their sizes.
  struct Route {
    std::vector<Where> at;                // per copy, list order
    std::vector<int64_t> chunk_elements;  // per chunk
  };
  Route route(int src_rank, int dst_rank) const;
  void unpack(int src_rank, int chunk_lo, int chunk_hi);  // copies with chunk in [lo, hi]
  core::Status first_error() const { return error_; }

  const ReshardPlan& plan_;
  std::vector<std::vector<int>> chunk_of_;
  int chunks_ = 0;
  ChunkBy by_;
  comm::Communicator& comm_;
  const model::Ops& ops_;
  std::vector<core::Tensor> src_, dst_;
  std::vector<Route> in_, out_;  // per peer: its messages to this rank, this rank's to it
  std::vector<std::vector<core::Tensor>> inbox_;       // [peer][chunk]
  std::vector<std::unique_ptr<comm::PendingRecvs>> pending_;  // per chunk
  int sent_through_ = -1, waited_through_ = -1;
  bool posted_ = false;
  core::Status error_;
  ReshardStats stats_;
};

}  // namespace hydraulis::parallel
