// Reshard execution: pack → grouped send/recv → unpack in source-rank order.
#include "parallel/reshard_exec.h"

#include <cstring>

namespace hydraulis::parallel {

namespace {

template <typename T>
void pack(const std::vector<Copy>& copies, const std::vector<core::Tensor>& src, T* out) {
  for (const Copy& c : copies) {
    const core::Tensor& t = src[size_t(c.src_tensor)];
    const int64_t cols = c.cols;
    const int64_t stride = t.dim() >= 2 ? t.numel() / t.size(0) : 1;
    const T* base = t.data<T>();
    for (int64_t r = 0; r < c.rows; ++r) {
      std::memcpy(out, base + (c.src_row + r) * stride + c.src_col, size_t(cols) * sizeof(T));
      out += cols;
    }
  }
}

template <typename T>
void unpack(const std::vector<Copy>& copies, const T* in, std::vector<core::Tensor>& dst,
            ReshardMode mode) {
  for (const Copy& c : copies) {
    core::Tensor& t = dst[size_t(c.dst_tensor)];
    const int64_t stride = t.dim() >= 2 ? t.numel() / t.size(0) : 1;
    T* base = t.data<T>();
    for (int64_t r = 0; r < c.rows; ++r) {
      T* row = base + (c.dst_row + r) * stride + c.dst_col;
      if (mode == ReshardMode::kAssign) {
        std::memcpy(row, in, size_t(c.cols) * sizeof(T));
      } else {
        for (int64_t i = 0; i < c.cols; ++i) row[i] += in[i];
      }
      in += c.cols;
    }
  }
}

template <typename T>
core::StatusOr<ReshardStats> run_typed(const ReshardPlan& plan, comm::Communicator& world,
                                       const std::vector<core::Tensor>& src,
                                       std::vector<core::Tensor>& dst, core::DType dtype) {
  const int me = world.rank(), W = world.size();
  ReshardStats stats;
  std::vector<comm::P2POp> ops;
  std::vector<core::Tensor> inbox;
  inbox.resize(static_cast<size_t>(W));
  for (int peer = 0; peer < W; ++peer) {
    if (peer == me) continue;
    const int64_t out_n = plan.elements(me, peer);
    if (out_n > 0) {
      core::Tensor buffer = core::Tensor::empty({out_n}, dtype);
      pack<T>(plan.copies[me][peer], src, buffer.data<T>());
      ops.push_back({comm::P2POp::Kind::kSend, peer, buffer});
      stats.elements_sent += out_n;
    }
    const int64_t in_n = plan.elements(peer, me);
    if (in_n > 0) {
      inbox[size_t(peer)] = core::Tensor::empty({in_n}, dtype);
      ops.push_back({comm::P2POp::Kind::kRecv, peer, inbox[size_t(peer)]});
      stats.elements_received += in_n;
    }
  }
  if (!ops.empty()) HYD_RETURN_IF_ERROR(world.group_p2p(ops));
  for (int peer = 0; peer < W; ++peer) {
    if (peer == me) {
      const int64_t n = plan.elements(me, me);
      if (n == 0) continue;
      core::Tensor staged = core::Tensor::empty({n}, dtype);  // src and dst may share storage
      pack<T>(plan.copies[me][me], src, staged.data<T>());
      unpack<T>(plan.copies[me][me], staged.data<T>(), dst, plan.mode);
      stats.elements_local += n;
    } else if (inbox[size_t(peer)].defined()) {
      unpack<T>(plan.copies[peer][me], inbox[size_t(peer)].data<T>(), dst, plan.mode);
    }
  }
  return stats;
}

}  // namespace

core::StatusOr<ReshardStats> run_reshard(const ReshardPlan& plan, comm::Communicator& world,
                                         const std::vector<core::Tensor>& src,
                                         std::vector<core::Tensor>& dst) {
  HYD_CHECK(plan.world_size() == world.size(), "reshard plan for {} ranks run on {}",
            plan.world_size(), world.size());
  const core::DType dtype = !src.empty() ? src.front().dtype()
                            : !dst.empty() ? dst.front().dtype()
                                           : core::DType::kF32;
  auto check = [&](const core::Tensor& t) {
    HYD_CHECK(t.device() == core::Device::kCpu && t.dtype() == dtype,
              "run_reshard: {} is not a CPU tensor of {}", t.describe(), core::dtype_name(dtype));
  };
  for (const core::Tensor& t : src) check(t);
  for (const core::Tensor& t : dst) check(t);
  if (dtype == core::DType::kF64) return run_typed<double>(plan, world, src, dst, dtype);
  HYD_CHECK(dtype == core::DType::kF32, "run_reshard: f32 or f64 tensors, got {}",
            core::dtype_name(dtype));
  return run_typed<float>(plan, world, src, dst, dtype);
}

}  // namespace hydraulis::parallel
