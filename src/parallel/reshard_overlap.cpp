// Overlapped reshard execution: chunked messages, receives posted early, sums in plan order.
#include "parallel/reshard_overlap.h"

#include <algorithm>

namespace hydraulis::parallel {

StageChunks stage_chunks(const Layout& strategy, const std::vector<LogicalParam>& params,
                         int64_t num_layers) {
  StageChunks out;
  out.count = int(num_layers + 2);
  for (const RankLayout& rank : strategy.ranks) {
    // The first stage is the one holding layer 0; its embedding is group 0. Elsewhere the table
    // is the tied LM head's copy (parallel/layout.h), part of the head group.
    const bool first_stage = std::any_of(rank.tensors.begin(), rank.tensors.end(),
                                         [&](const LocalTensor& t) {
                                           return params[size_t(t.param)].layer == 0;
                                         });
    std::vector<int>& use = out.use.emplace_back();
    std::vector<int>& done = out.done.emplace_back();
    for (const LocalTensor& t : rank.tensors) {
      const LogicalParam& p = params[size_t(t.param)];
      const bool embedding = p.kind == ShardKind::kVocab && p.name == "model.embed_tokens.weight";
      const int64_t group = p.layer >= 0                  ? 1 + p.layer
                            : embedding && first_stage ? 0
                                                       : num_layers + 1;
      use.push_back(use_chunk(group));
      done.push_back(done_chunk(group, num_layers));
    }
  }
  return out;
}

ReshardExchange::ReshardExchange(const ReshardPlan& plan,
                                 const std::vector<std::vector<int>>& chunk_of, int chunks,
                                 ChunkBy by, comm::Communicator& comm, const model::Ops& ops,
                                 std::vector<core::Tensor> src, std::vector<core::Tensor> dst)
    : plan_(plan), chunk_of_(chunk_of), chunks_(chunks), by_(by), comm_(comm), ops_(ops),
      src_(std::move(src)), dst_(std::move(dst)) {
  HYD_CHECK(plan.world_size() == comm.size() && int(chunk_of.size()) == comm.size(),
            "reshard exchange: plan for {} ranks, chunks for {}, run on {}", plan.world_size(),
            chunk_of.size(), comm.size());
  HYD_CHECK(comm.buffered_sends(), "reshard exchange needs buffered sends; {} has none: use "
            "run_reshard", comm.description());
  for (const core::Tensor& t : src_) {
    HYD_CHECK(t.dtype() == core::DType::kF32, "reshard exchange: {} is not f32", t.describe());
  }
  const int me = comm.rank(), W = comm.size();
  in_.resize(size_t(W));
  out_.resize(size_t(W));
  inbox_.resize(size_t(W));
  for (int peer = 0; peer < W; ++peer) {
    in_[size_t(peer)] = route(peer, me);
    out_[size_t(peer)] = route(me, peer);
  }
  pending_.resize(size_t(chunks));
}

ReshardExchange::~ReshardExchange() = default;

ReshardExchange::Route ReshardExchange::route(int src_rank, int dst_rank) const {
  Route r;
  r.chunk_elements.assign(size_t(chunks_), 0);
  for (const Copy& c : plan_.copies[size_t(src_rank)][size_t(dst_rank)]) {
    const int chunk = by_ == ChunkBy::kDestination
                          ? chunk_of_[size_t(dst_rank)][size_t(c.dst_tensor)]
                          : chunk_of_[size_t(src_rank)][size_t(c.src_tensor)];
    HYD_CHECK(chunk >= 0 && chunk < chunks_, "reshard exchange: chunk {} outside [0, {})", chunk,
              chunks_);
    r.at.push_back({chunk, r.chunk_elements[size_t(chunk)]});
    r.chunk_elements[size_t(chunk)] += c.numel();
  }
  return r;
}

core::Status ReshardExchange::post_receives() {
  HYD_CHECK(!posted_, "reshard exchange: receives posted twice");
  posted_ = true;
  const int me = comm_.rank(), W = comm_.size();
  for (int peer = 0; peer < W; ++peer) inbox_[size_t(peer)].resize(size_t(chunks_));
  // Chunk by chunk, so every pair's receives are posted in the order its messages are sent.
  for (int k = 0; k < chunks_; ++k) {
    std::vector<comm::P2POp> recvs;
    for (int peer = 0; peer < W; ++peer) {
      const int64_t n = in_[size_t(peer)].chunk_elements[size_t(k)];
      if (peer == me || n == 0) continue;
      core::Tensor& box = inbox_[size_t(peer)][size_t(k)];
      box = ops_.empty({n}, core::DType::kF32);
      recvs.push_back({comm::P2POp::Kind::kRecv, peer, box});
      stats_.elements_received += n;
    }
    if (recvs.empty()) continue;
    HYD_ASSIGN_OR_RETURN(pending_[size_t(k)], comm_.post_recvs(recvs));
  }
  return core::Status::ok();
}

void ReshardExchange::send_through(int chunk) {
  const int me = comm_.rank(), W = comm_.size();
  chunk = std::min(chunk, chunks_ - 1);
  for (int k = sent_through_ + 1; k <= chunk; ++k) {
    for (int peer = 0; peer < W && error_.is_ok(); ++peer) {
      if (peer == me) continue;
      const Route& out = out_[size_t(peer)];
      const int64_t n = out.chunk_elements[size_t(k)];
      if (n == 0) continue;
      core::Tensor buffer = ops_.empty({n}, core::DType::kF32);
      const auto& copies = plan_.copies[size_t(me)][size_t(peer)];
      for (size_t i = 0; i < copies.size(); ++i) {
        if (out.at[i].chunk != k) continue;
        const Copy& c = copies[i];
        core::Tensor flat =
            buffer.narrow_rows(out.at[i].offset, out.at[i].offset + c.numel()).reshape({c.rows, c.cols});
        ops_.copy_block(src_[size_t(c.src_tensor)], flat, {c.src_row, c.src_col, 0, 0, c.rows, c.cols},
                        cpu::BlockCopy::kAssign);
      }
      error_ = comm_.send(buffer, peer);
      stats_.elements_sent += n;
    }
  }
  sent_through_ = std::max(sent_through_, chunk);
}

void ReshardExchange::unpack(int src_rank, int chunk_lo, int chunk_hi) {
  const int me = comm_.rank();
  const cpu::BlockCopy mode =
      plan_.mode == ReshardMode::kAssign ? cpu::BlockCopy::kAssign : cpu::BlockCopy::kAccumulate;
  const auto& copies = plan_.copies[size_t(src_rank)][size_t(me)];
  const Route& in = in_[size_t(src_rank)];
  for (size_t i = 0; i < copies.size(); ++i) {
    const int k = in.at[i].chunk;
    if (k < chunk_lo || k > chunk_hi) continue;
    const Copy& c = copies[i];
    if (src_rank == me) {  // block to block: src and dst are distinct tensors of two layouts
      ops_.copy_block(src_[size_t(c.src_tensor)], dst_[size_t(c.dst_tensor)],
                      {c.src_row, c.src_col, c.dst_row, c.dst_col, c.rows, c.cols}, mode);
      stats_.elements_local += c.numel();
      continue;
    }
    core::Tensor flat = inbox_[size_t(src_rank)][size_t(k)]
                            .narrow_rows(in.at[i].offset, in.at[i].offset + c.numel())
                            .reshape({c.rows, c.cols});
    ops_.copy_block(flat, dst_[size_t(c.dst_tensor)], {0, 0, c.dst_row, c.dst_col, c.rows, c.cols},
                    mode);
  }
}

core::Status ReshardExchange::wait_through(int chunk) {
  HYD_CHECK(posted_, "reshard exchange: wait before post_receives");
  chunk = std::min(chunk, chunks_ - 1);
  if (chunk <= waited_through_) return core::Status::ok();
  for (int k = waited_through_ + 1; k <= chunk; ++k) {
    if (pending_[size_t(k)]) HYD_RETURN_IF_ERROR(pending_[size_t(k)]->wait());
  }
  // Assignments write each element once: their order is free, so they land right away.
  if (plan_.mode == ReshardMode::kAssign) {
    for (int peer = 0; peer < comm_.size(); ++peer) unpack(peer, waited_through_ + 1, chunk);
  }
  waited_through_ = chunk;
  return core::Status::ok();
}

core::StatusOr<ReshardStats> ReshardExchange::finish() {
  send_through(chunks_ - 1);
  HYD_RETURN_IF_ERROR(first_error());
  HYD_RETURN_IF_ERROR(wait_through(chunks_ - 1));
  // Sums in increasing source rank, this rank's local copies at its turn: run_reshard's order.
  if (plan_.mode == ReshardMode::kAccumulate) {
    for (int peer = 0; peer < comm_.size(); ++peer) unpack(peer, 0, chunks_ - 1);
  }
  return stats_;
}

}  // namespace hydraulis::parallel
