// NcclComm (see nccl_comm.h). Communicators are non-blocking (ncclConfig_t::blocking = 0): an
// NCCL call may return ncclInProgress and is then completed by polling ncclCommGetAsyncError
// against the deadline, so neither initialization, split nor enqueueing can hang. Completion of
// the enqueued GPU work is awaited only by synchronize()/barrier(), which poll cudaStreamQuery
// and the communicator's async error; a timeout calls ncclCommAbort (the communicator is dead
// afterwards and every later call fails with the recorded error).
#include "comm/nccl_comm.h"

#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <fmt/ranges.h>

#include "comm/reduce.h"

namespace hydraulis::comm {

using core::Status;
using Clock = std::chrono::steady_clock;

namespace {

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void pause(int spin) {
  if (spin < 64) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// NCCL element type of `dtype`; reductions are allowed on bf16, f32, i32, f64, i64.
core::StatusOr<ncclDataType_t> nccl_type(core::DType dtype, bool reduction, const std::string& who,
                                         const char* op) {
  using core::DType;
  switch (dtype) {
    case DType::kBF16: return ncclBfloat16;
    case DType::kF32: return ncclFloat32;
    case DType::kI32: return ncclInt32;
    case DType::kF64: return ncclFloat64;
    case DType::kI64: return ncclInt64;
    case DType::kF16: if (!reduction) return ncclFloat16; break;
    case DType::kU8: if (!reduction) return ncclUint8; break;
    default: break;
  }
  return core::invalid_argument("{}: {} does not carry {} tensors{}", who, op, core::dtype_name(dtype),
                                reduction ? " (reductions: bf16, f32, i32, f64, i64)" : "");
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::kSum ? ncclSum : ncclMax; }

Status cuda_error(cudaError_t e, const char* statement, const std::string& who) {
  return core::internal_error("{}: CUDA call failed: {}: {}", who, statement, cudaGetErrorString(e));
}

#define HYD_CUDA_TRY(stmt)                                                 \
  do {                                                                     \
    cudaError_t hyd_cuda_rc_ = (stmt);                                     \
    if (hyd_cuda_rc_ != cudaSuccess) return cuda_error(hyd_cuda_rc_, #stmt, description()); \
  } while (0)

// Enqueues an NCCL call of a member op, then completes it (polling while ncclInProgress).
#define HYD_NCCL_ENQUEUE(stmt, op, peer) HYD_RETURN_IF_ERROR(finish(static_cast<int>(stmt), #stmt, op, peer))

}  // namespace

NcclComm::NcclComm(ncclComm* comm, int cuda_device, cudaStream_t stream, CommOptions options,
                   std::string label)
    : comm_(comm), cuda_device_(cuda_device), stream_(stream), options_(options),
      label_(std::move(label)) {
  // Rank and size are read once the communicator is ready (create and split wait for that).
  int previous = 0;
  cudaGetDevice(&previous);
  cudaSetDevice(cuda_device_);
  if (cudaMalloc(&scratch_, 4) != cudaSuccess) scratch_ = nullptr;
  cudaSetDevice(previous);
}

NcclComm::~NcclComm() {
  if (scratch_ != nullptr) cudaFree(scratch_);
  if (comm_ == nullptr) return;
  if (broken_.is_ok()) {
    // Flush the communicator's work; a peer that never finishes turns this into an abort.
    ncclResult_t r = ncclCommFinalize(comm_);
    if (r == ncclSuccess || r == ncclInProgress) {
      Status s = await_comm(comm_, "destroy (ncclCommFinalize)", "all ranks");
      if (s.is_ok()) {
        ncclCommDestroy(comm_);
        comm_ = nullptr;
      } else {
        std::fprintf(stderr, "%s\n", s.to_string().c_str());
      }
    }
  }
  if (comm_ != nullptr) ncclCommAbort(comm_);
}

std::string NcclComm::description() const {
  return fmt::format("nccl rank {}/{} (cuda:{}){}", rank_, size_, cuda_device_, label_);
}

Status NcclComm::fail(Status error) {
  if (broken_.is_ok()) {
    broken_ = error;
    ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  return error;
}

Status NcclComm::start(const char* op) {
  if (!broken_.is_ok()) {
    return core::make_error(broken_.code(), "{}: {} refused: the communicator was aborted: {}",
                            description(), op, broken_.message());
  }
  HYD_CUDA_TRY(cudaSetDevice(cuda_device_));
  return Status::ok();
}

Status NcclComm::await_comm(ncclComm* comm, const char* op, const std::string& peer) {
  auto deadline = deadline_after(options_.timeout_s);
  for (int spin = 0;; ++spin) {
    ncclResult_t state = ncclSuccess;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) state = r;
    if (state == ncclSuccess) return Status::ok();
    if (state != ncclInProgress) {
      return core::internal_error("{}: {} with {} failed: {} ({})", description(), op, peer,
                                  ncclGetErrorString(state), ncclGetLastError(comm));
    }
    if (Clock::now() >= deadline) {
      return core::make_error(core::StatusCode::kFailedPrecondition,
                              "{}: {} with {} timed out after {} s (timeout_s in CommOptions)",
                              description(), op, peer, options_.timeout_s);
    }
    pause(spin);
  }
}

Status NcclComm::finish(int result, const char* statement, const char* op, const std::string& peer) {
  auto r = static_cast<ncclResult_t>(result);
  if (r != ncclSuccess && r != ncclInProgress) {
    return fail(core::internal_error("{}: {} with {}: NCCL call failed: {}: {} ({})", description(),
                                     op, peer, statement, ncclGetErrorString(r),
                                     ncclGetLastError(comm_)));
  }
  // Even a call that returned ncclSuccess may leave the (non-blocking) communicator busy with
  // background work (a split's init): the next call is only legal once it reports ncclSuccess.
  Status s = await_comm(comm_, op, peer);
  if (!s.is_ok()) return fail(s);
  if (std::strcmp(statement, "ncclGroupStart()") != 0) {
    if (enqueued_.size() == 8) enqueued_.erase(enqueued_.begin());
    enqueued_.push_back(fmt::format("{}: {}", op, peer));
  }
  return s;
}

Status NcclComm::synchronize() {
  HYD_RETURN_IF_ERROR(start("synchronize"));
  auto deadline = deadline_after(options_.timeout_s);
  for (int spin = 0;; ++spin) {
    cudaError_t e = cudaStreamQuery(stream_);
    if (e == cudaSuccess) {
      enqueued_.clear();
      return Status::ok();
    }
    if (e != cudaErrorNotReady) return fail(cuda_error(e, "cudaStreamQuery(stream)", description()));
    ncclResult_t state = ncclSuccess;
    ncclCommGetAsyncError(comm_, &state);
    if (state != ncclSuccess && state != ncclInProgress) {
      return fail(core::internal_error("{}: synchronize: NCCL failed: {} ({})", description(),
                                       ncclGetErrorString(state), ncclGetLastError(comm_)));
    }
    if (Clock::now() >= deadline) {
      return fail(core::make_error(
          core::StatusCode::kFailedPrecondition,
          "{}: synchronize timed out after {} s: an enqueued op waits for a peer that never "
          "joined it (timeout_s in CommOptions); communicator aborted; last ops enqueued: {}",
          description(), options_.timeout_s, fmt::join(enqueued_, "; ")));
    }
    pause(spin);
  }
}

Status NcclComm::all_reduce(core::Tensor& t, ReduceOp op) {
  HYD_RETURN_IF_ERROR(start("all_reduce"));
  HYD_RETURN_IF_ERROR(check_tensor(t, core::Device::kCuda, description(), "all_reduce", false));
  HYD_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(t.dtype(), true, description(), "all_reduce"));
  HYD_NCCL_ENQUEUE(ncclAllReduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), type,
                                 nccl_op(op), comm_, stream_),
                   "all_reduce", "all ranks");
  return Status::ok();
}

Status NcclComm::reduce_scatter(const core::Tensor& in, core::Tensor& out, ReduceOp op) {
  HYD_RETURN_IF_ERROR(start("reduce_scatter"));
  HYD_RETURN_IF_ERROR(check_tensor(in, core::Device::kCuda, description(), "reduce_scatter", false));
  HYD_RETURN_IF_ERROR(check_tensor(out, core::Device::kCuda, description(), "reduce_scatter", false));
  if (in.dtype() != out.dtype() || in.numel() != out.numel() * size_) {
    return core::invalid_argument("{}: reduce_scatter needs out of in/{} elements, got in {} and out {}",
                                  description(), size_, in.describe(), out.describe());
  }
  HYD_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(in.dtype(), true, description(), "reduce_scatter"));
  HYD_NCCL_ENQUEUE(ncclReduceScatter(in.raw_data(), out.raw_data(), static_cast<size_t>(out.numel()),
                                     type, nccl_op(op), comm_, stream_),
                   "reduce_scatter", "all ranks");
  return Status::ok();
}

Status NcclComm::all_gather(const core::Tensor& in, core::Tensor& out) {
  HYD_RETURN_IF_ERROR(start("all_gather"));
  HYD_RETURN_IF_ERROR(check_tensor(in, core::Device::kCuda, description(), "all_gather", false));
  HYD_RETURN_IF_ERROR(check_tensor(out, core::Device::kCuda, description(), "all_gather", false));
  if (in.dtype() != out.dtype() || out.numel() != in.numel() * size_) {
    return core::invalid_argument("{}: all_gather needs out of {} x in elements, got in {} and out {}",
                                  description(), size_, in.describe(), out.describe());
  }
  HYD_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(in.dtype(), false, description(), "all_gather"));
  HYD_NCCL_ENQUEUE(ncclAllGather(in.raw_data(), out.raw_data(), static_cast<size_t>(in.numel()), type,
                                 comm_, stream_),
                   "all_gather", "all ranks");
  return Status::ok();
}

Status NcclComm::broadcast(core::Tensor& t, int root) {
  HYD_RETURN_IF_ERROR(start("broadcast"));
  HYD_RETURN_IF_ERROR(check_tensor(t, core::Device::kCuda, description(), "broadcast", false));
  if (root < 0 || root >= size_) {
    return core::invalid_argument("{}: broadcast root {} is outside [0, {})", description(), root, size_);
  }
  HYD_ASSIGN_OR_RETURN(ncclDataType_t type, nccl_type(t.dtype(), false, description(), "broadcast"));
  HYD_NCCL_ENQUEUE(ncclBroadcast(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()), type, root,
                                 comm_, stream_),
                   "broadcast", fmt::format("root {}", root));
  return Status::ok();
}

Status NcclComm::send(const core::Tensor& t, int peer) {
  P2POp op{P2POp::Kind::kSend, peer, t};
  return group_p2p(std::span<P2POp>(&op, 1));
}

Status NcclComm::recv(core::Tensor& t, int peer) {
  P2POp op{P2POp::Kind::kRecv, peer, t};
  return group_p2p(std::span<P2POp>(&op, 1));
}

Status NcclComm::group_p2p(std::span<P2POp> ops) {
  HYD_RETURN_IF_ERROR(start("group_p2p"));
  std::string peers;
  for (const P2POp& p : ops) {
    if (p.peer < 0 || p.peer >= size_) {
      return core::invalid_argument("{}: group_p2p peer {} is outside [0, {})", description(), p.peer, size_);
    }
    HYD_RETURN_IF_ERROR(check_tensor(p.tensor, core::Device::kCuda, description(), "group_p2p", false));
    auto type = nccl_type(p.tensor.dtype(), false, description(), "group_p2p");
    if (!type.is_ok()) return type.status();
    peers += fmt::format("{}{} peer {}", peers.empty() ? "" : ", ",
                         p.kind == P2POp::Kind::kSend ? "send to" : "recv from", p.peer);
  }
  const char* name = ops.size() == 1 ? (ops[0].kind == P2POp::Kind::kSend ? "send" : "recv") : "group_p2p";
  HYD_NCCL_ENQUEUE(ncclGroupStart(), name, peers);
  for (P2POp& p : ops) {
    ncclDataType_t type = *nccl_type(p.tensor.dtype(), false, description(), name);
    auto count = static_cast<size_t>(p.tensor.numel());
    ncclResult_t r = p.kind == P2POp::Kind::kSend
                         ? ncclSend(p.tensor.raw_data(), count, type, p.peer, comm_, stream_)
                         : ncclRecv(p.tensor.raw_data(), count, type, p.peer, comm_, stream_);
    if (r != ncclSuccess && r != ncclInProgress) {
      ncclGroupEnd();
      return finish(static_cast<int>(r), p.kind == P2POp::Kind::kSend ? "ncclSend" : "ncclRecv", name, peers);
    }
  }
  HYD_NCCL_ENQUEUE(ncclGroupEnd(), name, peers);
  return Status::ok();
}

Status NcclComm::barrier() {
  HYD_RETURN_IF_ERROR(start("barrier"));
  if (scratch_ == nullptr) return core::internal_error("{}: barrier: no device scratch buffer", description());
  HYD_NCCL_ENQUEUE(ncclAllReduce(scratch_, scratch_, 1, ncclInt32, ncclSum, comm_, stream_), "barrier",
                   "all ranks");
  return synchronize();
}

core::StatusOr<std::shared_ptr<Communicator>> NcclComm::split(int color, int key) {
  HYD_RETURN_IF_ERROR(start("split"));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  // A non-blocking split may publish the new handle from NCCL's init thread after returning
  // ncclInProgress, so the handle lives on the heap (leaked if the split never completes).
  auto* slot = new ncclComm_t(nullptr);
  HYD_NCCL_ENQUEUE(ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, slot, &config),
                   "split", "all ranks");
  if (color < 0) {
    delete slot;
    return std::shared_ptr<Communicator>();
  }
  auto deadline = deadline_after(options_.timeout_s);
  ncclComm_t child = nullptr;
  for (int spin = 0; (child = std::atomic_ref<ncclComm_t>(*slot).load()) == nullptr; ++spin) {
    if (Clock::now() >= deadline) {
      return fail(core::make_error(core::StatusCode::kFailedPrecondition,
                                   "{}: split (color {}) timed out after {} s before NCCL made "
                                   "the new communicator", description(), color, options_.timeout_s));
    }
    pause(spin);
  }
  delete slot;
  Status ready = await_comm(child, "split (new communicator)", "its ranks");
  if (ready.is_ok()) ready = await_comm(comm_, "split", "all ranks");
  if (!ready.is_ok()) {
    ncclCommAbort(child);
    return ready;
  }
  auto split_comm = std::make_shared<NcclComm>(
      child, cuda_device_, stream_, options_,
      fmt::format(" (split color {} of {} ranks{})", color, size_, label_));
  ncclCommUserRank(child, &split_comm->rank_);
  ncclCommCount(child, &split_comm->size_);
  return std::shared_ptr<Communicator>(std::move(split_comm));
}

core::StatusOr<std::shared_ptr<NcclComm>> NcclComm::create(MpiComm& bootstrap, int cuda_device,
                                                           cudaStream_t stream, CommOptions options) {
  const std::string who = fmt::format("nccl bootstrap over {}", bootstrap.description());
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || cuda_device < 0 || cuda_device >= devices) {
    return core::make_error(core::StatusCode::kFailedPrecondition,
                            "{}: CUDA device {} is not available ({} device(s): {})", who,
                            cuda_device, devices, cudaGetErrorString(e));
  }
  // Rank 0 makes the id; the MPI broadcast carries its 128 bytes to every rank.
  ncclUniqueId id;
  std::memset(&id, 0, sizeof(id));
  if (bootstrap.rank() == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) {
      return core::internal_error("{}: ncclGetUniqueId: {}", who, ncclGetErrorString(r));
    }
  }
  core::Tensor bytes = core::Tensor::empty({static_cast<int64_t>(sizeof(id))}, core::DType::kU8);
  std::memcpy(bytes.raw_data(), &id, sizeof(id));
  HYD_RETURN_IF_ERROR(bootstrap.broadcast(bytes, 0));
  std::memcpy(&id, bytes.raw_data(), sizeof(id));

  e = cudaSetDevice(cuda_device);
  if (e != cudaSuccess) return cuda_error(e, "cudaSetDevice", who);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, bootstrap.size(), id, bootstrap.rank(), &config);
  if (r != ncclSuccess && r != ncclInProgress) {
    return core::internal_error("{}: ncclCommInitRankConfig: {}", who, ncclGetErrorString(r));
  }
  auto nccl = std::make_shared<NcclComm>(comm, cuda_device, stream, options, "");
  Status ready = nccl->await_comm(comm, "init (ncclCommInitRankConfig)", "all ranks");
  if (!ready.is_ok()) return nccl->fail(ready);
  // Rank and size are read once the communicator is ready.
  ncclCommUserRank(comm, &nccl->rank_);
  ncclCommCount(comm, &nccl->size_);
  return nccl;
}

}  // namespace hydraulis::comm
