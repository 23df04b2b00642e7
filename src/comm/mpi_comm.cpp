// MpiComm (see mpi_comm.h). Only non-blocking MPI calls are used, each completed by polling
// MPI_Testall against the deadline, so no call can hang past CommOptions::timeout_s.
// Every collective starts with an "agreement": an MPI_Iallgather of a 4-number header
// {op, bytes, dtype, arg} so that mismatched calls fail on every rank with the same message,
// and a rank's bad argument fails the collective everywhere instead of leaving the others waiting.
// all_reduce = alltoallv (rank q receives chunk q of every rank) + rank-order reduction of
// that chunk + allgatherv: each element is reduced once, in rank order, by its owner, so all
// ranks get identical bits regardless of MPI's internal algorithms (which only move bytes).
#include "comm/mpi_comm.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <thread>

#include "comm/reduce.h"
#include "core/check.h"

namespace hydraulis::comm {

using core::Status;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kP2PTag = 17;
// Op ids of the agreement header (positions in this list).
constexpr std::array<const char*, 7> kCollectiveOps = {"all_reduce", "reduce_scatter", "all_gather",
                                                       "broadcast", "barrier", "split", "duplicate"};

int64_t op_id(const char* op) {
  for (size_t i = 0; i < kCollectiveOps.size(); ++i) {
    if (std::strcmp(kCollectiveOps[i], op) == 0) return static_cast<int64_t>(i);
  }
  return -1;
}

Status mpi_error(int code, const char* statement, const std::string& who) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  return core::internal_error("{}: MPI call failed: {}: {} (error {})", who, statement,
                              std::string(text, static_cast<size_t>(length)), code);
}

// Checked MPI call inside an MpiComm member: returns a Status naming the statement and rank.
#define HYD_MPI_TRY(stmt)                                            \
  do {                                                               \
    int hyd_mpi_rc_ = (stmt);                                        \
    if (hyd_mpi_rc_ != MPI_SUCCESS) return mpi_error(hyd_mpi_rc_, #stmt, description()); \
  } while (0)

Status byte_count(size_t bytes, const std::string& who, const char* op, int* count) {
  if (bytes > static_cast<size_t>(INT_MAX)) {
    return core::invalid_argument("{}: {} of {} bytes exceeds the 2 GiB MPI message limit of the CPU "
                                  "backend: split the tensor", who, op, bytes);
  }
  *count = static_cast<int>(bytes);
  return Status::ok();
}

}  // namespace

struct PendingSend {
  std::vector<std::byte> bytes;
  MPI_Request request = MPI_REQUEST_NULL;
  int peer = 0;
};

struct MpiHandles {
  MPI_Comm comm = MPI_COMM_NULL;
  std::deque<PendingSend> sends;
};

struct MpiRequests {
  std::vector<MPI_Request> requests;
  std::vector<MPI_Status> statuses;
  MPI_Request* add() {
    requests.push_back(MPI_REQUEST_NULL);
    return &requests.back();
  }
};

MpiComm::MpiComm(std::unique_ptr<MpiHandles> handles, CommOptions options, std::string label)
    : handles_(std::move(handles)), options_(options), label_(std::move(label)) {
  MPI_Comm_rank(handles_->comm, &rank_);
  MPI_Comm_size(handles_->comm, &size_);
  MPI_Comm_set_errhandler(handles_->comm, MPI_ERRORS_RETURN);
}

MpiComm::~MpiComm() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized || !handles_) return;
  Status flushed = handles_->sends.empty() ? Status::ok() : broken_.is_ok() ? flush_sends() : broken_;
  if (!flushed.is_ok() && !handles_->sends.empty()) {
    std::fprintf(stderr, "%s: %zu send(s) never received: %s\n", description().c_str(),
                 handles_->sends.size(), flushed.message().c_str());
    // MPI may still read the buffers of unfinished sends: leak them rather than free them.
    new std::deque<PendingSend>(std::move(handles_->sends));
  }
  if (handles_->comm != MPI_COMM_NULL) MPI_Comm_free(&handles_->comm);
}

std::string MpiComm::description() const {
  return fmt::format("mpi rank {}/{}{}", rank_, size_, label_);
}

Status MpiComm::wait(MpiRequests& r, const char* op, const std::string& peer,
                     OnTimeout on_timeout) {
  r.statuses.assign(r.requests.size(), MPI_Status{});
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(options_.timeout_s));
  for (int spin = 0;; ++spin) {
    int done = 0;
    int rc = MPI_Testall(static_cast<int>(r.requests.size()), r.requests.data(), &done,
                         r.statuses.data());
    if (rc != MPI_SUCCESS) {
      for (const MPI_Status& s : r.statuses) {
        if (rc == MPI_ERR_IN_STATUS && s.MPI_ERROR != MPI_SUCCESS) rc = s.MPI_ERROR;
      }
      return mpi_error(rc, op, fmt::format("{}: {} with {}", description(), op, peer));
    }
    if (done) return Status::ok();
    if (Clock::now() >= deadline) {
      broken_ = core::make_error(core::StatusCode::kFailedPrecondition,
                                 "{}: {} with {} timed out after {} s (timeout_s in CommOptions)",
                                 description(), op, peer, options_.timeout_s);
      // Receives are withdrawn; a collective cannot be, so the communicator stays broken.
      for (MPI_Request& q : r.requests) {
        if (on_timeout == OnTimeout::kCancel && q != MPI_REQUEST_NULL) {
          MPI_Cancel(&q);
          MPI_Request_free(&q);
        }
      }
      return broken_;
    }
    if (spin < 64) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

Status MpiComm::reap_sends() {
  auto& sends = handles_->sends;
  while (!sends.empty()) {
    int done = 0;
    HYD_MPI_TRY(MPI_Test(&sends.front().request, &done, MPI_STATUS_IGNORE));
    if (!done) break;
    sends.pop_front();
  }
  return Status::ok();
}

Status MpiComm::flush_sends() {
  if (handles_->sends.empty()) return Status::ok();
  auto& sends = handles_->sends;
  MpiRequests r;
  std::string peers;
  for (PendingSend& s : sends) {
    r.requests.push_back(s.request);
    peers += fmt::format("{}peer {}", peers.empty() ? "" : ", ", s.peer);
  }
  Status status = wait(r, "flush of buffered sends", peers, OnTimeout::kKeep);
  for (size_t i = 0; i < sends.size(); ++i) sends[i].request = r.requests[i];
  std::erase_if(sends, [](const PendingSend& s) { return s.request == MPI_REQUEST_NULL; });
  return status;
}

Status MpiComm::start(const char* op) {
  if (!broken_.is_ok()) {
    return core::make_error(broken_.code(), "{}: {} refused: the communicator is broken: {}",
                            description(), op, broken_.message());
  }
  return reap_sends();
}

Status MpiComm::agree(const char* op, const core::Tensor* t, int64_t arg, const Status& local) {
  HYD_RETURN_IF_ERROR(start(op));
  std::array<int64_t, 4> mine = {op_id(op), -1, -1, arg};
  if (local.is_ok() && t != nullptr) {
    mine[1] = static_cast<int64_t>(t->nbytes());
    mine[2] = static_cast<int64_t>(t->dtype());
  } else if (local.is_ok()) {
    mine[1] = 0;
  }
  std::vector<int64_t> all(4 * static_cast<size_t>(size_));
  MpiRequests r;
  HYD_MPI_TRY(MPI_Iallgather(mine.data(), 4, MPI_INT64_T, all.data(), 4, MPI_INT64_T,
                             handles_->comm, r.add()));
  HYD_RETURN_IF_ERROR(wait(r, op, fmt::format("all {} ranks", size_), OnTimeout::kKeep));
  if (!local.is_ok()) return local;
  for (int q = 0; q < size_; ++q) {
    if (all[4 * q + 1] == -1) {
      return core::invalid_argument("{}: {} failed on rank {} (bad arguments there)", description(),
                                    op, q);
    }
  }
  for (int q = 1; q < size_; ++q) {
    const int64_t* a = &all[0];
    const int64_t* b = &all[4 * q];
    if (a[0] != b[0]) {
      auto name = [](int64_t id) { return id >= 0 && id < 7 ? kCollectiveOps[id] : "?"; };
      return core::invalid_argument("{}: collective mismatch: rank 0 calls {}, rank {} calls {}",
                                    description(), name(a[0]), q, name(b[0]));
    }
    if (a[1] != b[1] || a[2] != b[2] || a[3] != b[3]) {
      return core::invalid_argument(
          "{}: {} arguments differ across ranks: rank 0 passes {} bytes of dtype {} (arg {}), "
          "rank {} passes {} bytes of dtype {} (arg {})",
          description(), op, a[1], a[2], a[3], q, b[1], b[2], b[3]);
    }
  }
  return Status::ok();
}

Status MpiComm::all_reduce(core::Tensor& t, ReduceOp op) {
  Status local = check_tensor(t, core::Device::kCpu, description(), "all_reduce", true);
  int total = 0;
  if (local.is_ok()) local = byte_count(t.nbytes(), description(), "all_reduce", &total);
  HYD_RETURN_IF_ERROR(agree("all_reduce", &t, static_cast<int64_t>(op), local));
  if (size_ == 1) return Status::ok();
  const int64_t n = t.numel();
  const int64_t elem = static_cast<int64_t>(core::dtype_size(t.dtype()));
  std::vector<int> counts(size_), displs(size_);
  for (int c = 0; c < size_; ++c) {
    ChunkRange range = chunk_range(n, size_, c);
    counts[c] = static_cast<int>(range.size() * elem);
    displs[c] = static_cast<int>(range.begin * elem);
  }
  // Phase 1: rank q receives chunk q from every rank, stacked in rank order.
  const int mine = counts[rank_];
  std::vector<std::byte> stacked(static_cast<size_t>(mine) * size_);
  std::vector<int> recv_counts(size_, mine), recv_displs(size_);
  for (int q = 0; q < size_; ++q) recv_displs[q] = q * mine;
  MpiRequests r;
  HYD_MPI_TRY(MPI_Ialltoallv(t.raw_data(), counts.data(), displs.data(), MPI_BYTE, stacked.data(),
                             recv_counts.data(), recv_displs.data(), MPI_BYTE, handles_->comm,
                             r.add()));
  HYD_RETURN_IF_ERROR(wait(r, "all_reduce (scatter phase)", fmt::format("all {} ranks", size_), OnTimeout::kKeep));
  // Phase 2: reduce my chunk in rank order, then everyone gathers every chunk.
  std::vector<const void*> inputs(size_);
  for (int q = 0; q < size_; ++q) inputs[q] = stacked.data() + static_cast<size_t>(q) * mine;
  std::vector<std::byte> reduced(static_cast<size_t>(mine));
  HYD_RETURN_IF_ERROR(reduce_in_order(t.dtype(), op, inputs, reduced.data(), mine / elem));
  MpiRequests g;
  HYD_MPI_TRY(MPI_Iallgatherv(reduced.data(), mine, MPI_BYTE, t.raw_data(), counts.data(),
                              displs.data(), MPI_BYTE, handles_->comm, g.add()));
  return wait(g, "all_reduce (gather phase)", fmt::format("all {} ranks", size_), OnTimeout::kKeep);
}

Status MpiComm::reduce_scatter(const core::Tensor& in, core::Tensor& out, ReduceOp op) {
  Status local = check_tensor(in, core::Device::kCpu, description(), "reduce_scatter", true);
  if (local.is_ok()) local = check_tensor(out, core::Device::kCpu, description(), "reduce_scatter", true);
  if (local.is_ok() && (out.dtype() != in.dtype() || in.numel() != out.numel() * size_)) {
    local = core::invalid_argument("{}: reduce_scatter needs out of in/{} elements of in's dtype, "
                                   "got in {} and out {}", description(), size_, in.describe(),
                                   out.describe());
  }
  int total = 0;
  if (local.is_ok()) local = byte_count(in.nbytes(), description(), "reduce_scatter", &total);
  HYD_RETURN_IF_ERROR(agree("reduce_scatter", &in, static_cast<int64_t>(op), local));
  const int chunk = static_cast<int>(out.nbytes());
  std::vector<std::byte> stacked(static_cast<size_t>(chunk) * size_);
  MpiRequests r;
  HYD_MPI_TRY(MPI_Ialltoall(in.raw_data(), chunk, MPI_BYTE, stacked.data(), chunk, MPI_BYTE,
                            handles_->comm, r.add()));
  HYD_RETURN_IF_ERROR(wait(r, "reduce_scatter", fmt::format("all {} ranks", size_), OnTimeout::kKeep));
  std::vector<const void*> inputs(size_);
  for (int q = 0; q < size_; ++q) inputs[q] = stacked.data() + static_cast<size_t>(q) * chunk;
  return reduce_in_order(in.dtype(), op, inputs, out.raw_data(), out.numel());
}

Status MpiComm::all_gather(const core::Tensor& in, core::Tensor& out) {
  Status local = check_tensor(in, core::Device::kCpu, description(), "all_gather", false);
  if (local.is_ok()) local = check_tensor(out, core::Device::kCpu, description(), "all_gather", false);
  if (local.is_ok() && (out.dtype() != in.dtype() || out.numel() != in.numel() * size_)) {
    local = core::invalid_argument("{}: all_gather needs out of {} x in elements, got in {} and out {}",
                                   description(), size_, in.describe(), out.describe());
  }
  int total = 0;
  if (local.is_ok()) local = byte_count(out.nbytes(), description(), "all_gather", &total);
  HYD_RETURN_IF_ERROR(agree("all_gather", &in, 0, local));
  // A private copy of `in`, so that `in` may alias (a chunk of) `out`.
  std::vector<std::byte> piece(in.nbytes());
  if (!piece.empty()) std::memcpy(piece.data(), in.raw_data(), piece.size());
  MpiRequests r;
  HYD_MPI_TRY(MPI_Iallgather(piece.data(), static_cast<int>(piece.size()), MPI_BYTE, out.raw_data(),
                             static_cast<int>(piece.size()), MPI_BYTE, handles_->comm, r.add()));
  return wait(r, "all_gather", fmt::format("all {} ranks", size_), OnTimeout::kKeep);
}

Status MpiComm::broadcast(core::Tensor& t, int root) {
  Status local = check_tensor(t, core::Device::kCpu, description(), "broadcast", false);
  if (local.is_ok() && (root < 0 || root >= size_)) {
    local = core::invalid_argument("{}: broadcast root {} is outside [0, {})", description(), root, size_);
  }
  int count = 0;
  if (local.is_ok()) local = byte_count(t.nbytes(), description(), "broadcast", &count);
  HYD_RETURN_IF_ERROR(agree("broadcast", &t, root, local));
  MpiRequests r;
  HYD_MPI_TRY(MPI_Ibcast(t.raw_data(), count, MPI_BYTE, root, handles_->comm, r.add()));
  return wait(r, "broadcast", fmt::format("root {}", root), OnTimeout::kKeep);
}

Status MpiComm::barrier() {
  // The agreement is itself a full synchronization (an allgather every rank must enter).
  return agree("barrier", nullptr, 0, Status::ok());
}

Status MpiComm::post_send(const core::Tensor& t, int peer, const char* op) {
  if (peer < 0 || peer >= size_) {
    return core::invalid_argument("{}: {} peer {} is outside [0, {})", description(), op, peer, size_);
  }
  HYD_RETURN_IF_ERROR(check_tensor(t, core::Device::kCpu, description(), op, false));
  int count = 0;
  HYD_RETURN_IF_ERROR(byte_count(t.nbytes(), description(), op, &count));
  PendingSend& s = handles_->sends.emplace_back();
  s.peer = peer;
  s.bytes.resize(t.nbytes());
  if (count > 0) std::memcpy(s.bytes.data(), t.raw_data(), s.bytes.size());
  int rc = MPI_Isend(s.bytes.data(), count, MPI_BYTE, peer, kP2PTag, handles_->comm, &s.request);
  if (rc != MPI_SUCCESS) {
    handles_->sends.pop_back();
    return mpi_error(rc, "MPI_Isend", fmt::format("{}: {} to peer {}", description(), op, peer));
  }
  return Status::ok();
}

Status MpiComm::send(const core::Tensor& t, int peer) {
  HYD_RETURN_IF_ERROR(start("send"));
  return post_send(t, peer, "send");
}

Status MpiComm::recv(core::Tensor& t, int peer) {
  P2POp op{P2POp::Kind::kRecv, peer, t};
  return group_p2p(std::span<P2POp>(&op, 1));
}

Status MpiComm::post_irecvs(std::span<P2POp> ops, const char* name, MpiRequests& r,
                            std::vector<size_t>& index, std::string& peers) {
  for (size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].kind != P2POp::Kind::kRecv) continue;
    int count = 0;
    HYD_RETURN_IF_ERROR(byte_count(ops[i].tensor.nbytes(), description(), name, &count));
    HYD_MPI_TRY(MPI_Irecv(ops[i].tensor.raw_data(), count, MPI_BYTE, ops[i].peer, kP2PTag,
                          handles_->comm, r.add()));
    index.push_back(i);
    peers += fmt::format("{}peer {}", peers.empty() ? "" : ", ", ops[i].peer);
  }
  return Status::ok();
}

Status MpiComm::check_received(std::span<const P2POp> ops, const char* name,
                               const MpiRequests& r, const std::vector<size_t>& index) const {
  for (size_t k = 0; k < index.size(); ++k) {
    const P2POp& p = ops[index[k]];
    int got = 0;
    MPI_Get_count(&r.statuses[k], MPI_BYTE, &got);
    if (static_cast<size_t>(got) != p.tensor.nbytes()) {
      return core::invalid_argument("{}: {} from peer {} got {} bytes, expected {} ({})",
                                    description(), name, p.peer, got, p.tensor.nbytes(),
                                    p.tensor.describe());
    }
  }
  return Status::ok();
}

Status MpiComm::check_p2p(std::span<const P2POp> ops, const char* name) const {
  for (const P2POp& p : ops) {
    if (p.peer < 0 || p.peer >= size_) {
      return core::invalid_argument("{}: {} peer {} is outside [0, {})", description(), name,
                                    p.peer, size_);
    }
    HYD_RETURN_IF_ERROR(check_tensor(p.tensor, core::Device::kCpu, description(), name, false));
  }
  return Status::ok();
}

Status MpiComm::group_p2p(std::span<P2POp> ops) {
  HYD_RETURN_IF_ERROR(start("group_p2p"));
  const bool single_recv = ops.size() == 1 && ops[0].kind == P2POp::Kind::kRecv;
  const char* name = single_recv ? "recv" : "group_p2p";
  HYD_RETURN_IF_ERROR(check_p2p(ops, name));
  // Receives are posted first, then the (buffered) sends: no ordering can deadlock.
  MpiRequests r;
  std::vector<size_t> recv_index;
  std::string peers;
  HYD_RETURN_IF_ERROR(post_irecvs(ops, name, r, recv_index, peers));
  for (const P2POp& p : ops) {
    if (p.kind == P2POp::Kind::kSend) HYD_RETURN_IF_ERROR(post_send(p.tensor, p.peer, "group_p2p send"));
  }
  if (r.requests.empty()) return Status::ok();
  std::string what = single_recv ? fmt::format("recv of {}", ops[0].tensor.describe()) : name;
  HYD_RETURN_IF_ERROR(wait(r, what.c_str(), peers, OnTimeout::kCancel));
  return check_received(ops, name, r, recv_index);
}

// Receives in flight between post_recvs() and wait(); `ops` keeps their tensors alive.
class MpiPendingRecvs final : public PendingRecvs {
 public:
  explicit MpiPendingRecvs(MpiComm& comm) : comm_(comm) {}
  // Never waited (an error path): withdraw the receives before their buffers go.
  ~MpiPendingRecvs() override {
    for (MPI_Request& q : r_.requests) {
      if (q == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&q);
      MPI_Request_free(&q);
    }
  }
  Status wait() override {
    if (r_.requests.empty()) return Status::ok();
    HYD_RETURN_IF_ERROR(comm_.wait(r_, "posted receives", peers_, MpiComm::OnTimeout::kCancel));
    Status status = comm_.check_received(ops_, "posted receives", r_, index_);
    r_.requests.clear();
    return status;
  }

 private:
  friend class MpiComm;
  MpiComm& comm_;
  std::vector<P2POp> ops_;
  MpiRequests r_;
  std::vector<size_t> index_;
  std::string peers_;
};

core::StatusOr<std::unique_ptr<PendingRecvs>> MpiComm::post_recvs(std::span<const P2POp> recvs) {
  HYD_RETURN_IF_ERROR(start("post_recvs"));
  for (const P2POp& p : recvs) HYD_CHECK(p.kind == P2POp::Kind::kRecv, "post_recvs takes receives only");
  HYD_RETURN_IF_ERROR(check_p2p(recvs, "post_recvs"));
  auto pending = std::make_unique<MpiPendingRecvs>(*this);
  pending->ops_.assign(recvs.begin(), recvs.end());
  HYD_RETURN_IF_ERROR(
      post_irecvs(pending->ops_, "post_recvs", pending->r_, pending->index_, pending->peers_));
  return std::unique_ptr<PendingRecvs>(std::move(pending));
}

core::StatusOr<std::shared_ptr<MpiComm>> MpiComm::split_mpi(int color, int key) {
  // The agreement proves every rank is here, so the blocking MPI_Comm_split cannot hang.
  HYD_RETURN_IF_ERROR(agree("split", nullptr, 0, Status::ok()));
  auto handles = std::make_unique<MpiHandles>();
  HYD_MPI_TRY(MPI_Comm_split(handles_->comm, color < 0 ? MPI_UNDEFINED : color, key, &handles->comm));
  if (color < 0) return std::shared_ptr<MpiComm>();
  return std::make_shared<MpiComm>(std::move(handles), options_,
                                   fmt::format(" (split color {} of {} ranks{})", color, size_, label_));
}

core::StatusOr<std::shared_ptr<Communicator>> MpiComm::split(int color, int key) {
  HYD_ASSIGN_OR_RETURN(std::shared_ptr<MpiComm> child, split_mpi(color, key));
  return std::shared_ptr<Communicator>(std::move(child));
}

core::StatusOr<std::shared_ptr<MpiComm>> MpiComm::duplicate(const CommOptions& options) {
  HYD_RETURN_IF_ERROR(agree("duplicate", nullptr, 0, Status::ok()));
  auto handles = std::make_unique<MpiHandles>();
  HYD_MPI_TRY(MPI_Comm_dup(handles_->comm, &handles->comm));
  return std::make_shared<MpiComm>(std::move(handles), options, label_);
}

core::StatusOr<std::shared_ptr<MpiComm>> mpi_init_world(int* argc, char*** argv, CommOptions options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Init_thread", "mpi_init_world");
    if (provided < MPI_THREAD_SERIALIZED) {
      return core::make_error(core::StatusCode::kFailedPrecondition,
                              "mpi_init_world: MPI provides thread level {}, Hydraulis needs at "
                              "least MPI_THREAD_SERIALIZED: use an OpenMPI built with threads",
                              provided);
    }
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  auto handles = std::make_unique<MpiHandles>();
  int rc = MPI_Comm_dup(MPI_COMM_WORLD, &handles->comm);
  if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Comm_dup(MPI_COMM_WORLD)", "mpi_init_world");
  auto world = std::make_shared<MpiComm>(std::move(handles), options, "");
  core::set_process_rank(world->rank());
  return world;
}

Status mpi_finalize() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return Status::ok();
  int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Finalize", "mpi_finalize");
  return Status::ok();
}

void abort_world(const Status& reason) {
  int initialized = 0, finalized = 0, rank = -1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "hydraulis: rank %d: fatal: %s\n", rank, reason.to_string().c_str());
  std::fflush(stderr);
  if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

}  // namespace hydraulis::comm
