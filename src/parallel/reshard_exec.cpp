// Reshard execution: pack → grouped send/recv → unpack in source-rank order.
#include "parallel/reshard_exec.h"


namespace hydraulis::parallel {

namespace {

// Packs (or unpacks) one peer's rectangles through the backend's block copy: `buffer` is a flat
// f32 tensor, the rectangles lie in it back to back in list order.
enum class Side { kSource, kDestination };

void move_blocks(const model::Ops& ops, const std::vector<Copy>& copies, Side tensors_side,
                 const std::vector<core::Tensor>& tensors, std::vector<core::Tensor>* out,
                 core::Tensor& buffer, cpu::BlockCopy mode) {
  int64_t offset = 0;
  for (const Copy& c : copies) {
    core::Tensor flat = buffer.narrow_rows(offset, offset + c.numel()).reshape({c.rows, c.cols});
    if (tensors_side == Side::kSource) {  // pack: tensor block → buffer
      ops.copy_block(tensors[size_t(c.src_tensor)], flat,
                     {c.src_row, c.src_col, 0, 0, c.rows, c.cols}, cpu::BlockCopy::kAssign);
    } else {  // unpack: buffer → tensor block
      ops.copy_block(flat, (*out)[size_t(c.dst_tensor)],
                     {0, 0, c.dst_row, c.dst_col, c.rows, c.cols}, mode);
    }
    offset += c.numel();
  }
}

}  // namespace

core::StatusOr<ReshardStats> run_reshard(const ReshardPlan& plan, comm::Communicator& world,
                                         const model::Ops& ops,
                                         const std::vector<core::Tensor>& src,
                                         std::vector<core::Tensor>& dst) {
  HYD_CHECK(plan.world_size() == world.size(), "reshard plan for {} ranks run on {}",
            plan.world_size(), world.size());
  auto check = [&](const core::Tensor& t) {
    HYD_CHECK(t.device() == ops.device() && t.dtype() == core::DType::kF32,
              "run_reshard: {} is not an f32 tensor on {}", t.describe(), ops.description());
  };
  for (const core::Tensor& t : src) check(t);
  for (const core::Tensor& t : dst) check(t);
  const cpu::BlockCopy mode =
      plan.mode == ReshardMode::kAssign ? cpu::BlockCopy::kAssign : cpu::BlockCopy::kAccumulate;
  const int me = world.rank(), W = world.size();
  ReshardStats stats;
  std::vector<comm::P2POp> transfers;
  std::vector<core::Tensor> inbox;
  inbox.resize(static_cast<size_t>(W));
  for (int peer = 0; peer < W; ++peer) {
    if (peer == me) continue;
    const int64_t out_n = plan.elements(me, peer);
    if (out_n > 0) {
      core::Tensor buffer = ops.empty({out_n}, core::DType::kF32);
      move_blocks(ops, plan.copies[me][peer], Side::kSource, src, nullptr, buffer, mode);
      transfers.push_back({comm::P2POp::Kind::kSend, peer, buffer});
      stats.elements_sent += out_n;
    }
    const int64_t in_n = plan.elements(peer, me);
    if (in_n > 0) {
      inbox[size_t(peer)] = ops.empty({in_n}, core::DType::kF32);
      transfers.push_back({comm::P2POp::Kind::kRecv, peer, inbox[size_t(peer)]});
      stats.elements_received += in_n;
    }
  }
  if (!transfers.empty()) HYD_RETURN_IF_ERROR(world.group_p2p(transfers));
  // Unpack in increasing source rank (this rank's own copies at its turn): a fixed sum order.
  for (int peer = 0; peer < W; ++peer) {
    if (peer == me) {
      // Local copies go block to block (src and dst are distinct tensors of two layouts).
      for (const Copy& c : plan.copies[me][me]) {
        ops.copy_block(src[size_t(c.src_tensor)], dst[size_t(c.dst_tensor)],
                       {c.src_row, c.src_col, c.dst_row, c.dst_col, c.rows, c.cols}, mode);
      }
      stats.elements_local += plan.elements(me, me);
    } else if (inbox[size_t(peer)].defined()) {
      move_blocks(ops, plan.copies[peer][me], Side::kDestination, {}, &dst, inbox[size_t(peer)],
                  mode);
    }
  }
  return stats;
}

}  // namespace hydraulis::parallel
