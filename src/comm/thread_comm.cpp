// ThreadComm (see thread_comm.h). A collective is two rendezvous on the world's generation
// barrier: (1) every rank posts a pointer to its input and waits for all; each rank then computes
// its own output from everyone's inputs into a private buffer; (2) a second rendezvous guarantees
// nobody still reads an input before the outputs (which may alias inputs) are written.
// Point-to-point messages are copied into per-(src, dst) FIFO mailboxes, so send never blocks.
#include "comm/thread_comm.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "comm/reduce.h"
#include "core/check.h"

namespace hydraulis::comm {

using core::Status;
using Clock = std::chrono::steady_clock;

// One mutex, condition variable and abort flag for a world and every world split from it.
struct ThreadHub {
  std::mutex mu;
  std::condition_variable cv;
  bool aborted = false;
  Status abort_status;

  void abort_locked(const Status& reason) {
    if (!aborted) {
      aborted = true;
      abort_status = reason;
    }
    cv.notify_all();
  }
};

struct ThreadCollectiveEntry {
  const char* op = "";
  const void* data = nullptr;
  size_t nbytes = 0;
  core::DType dtype = core::DType::kU8;
  std::string what;         // t.describe(), for mismatch messages
  int64_t must_match = 0;   // root or reduce op: equal on every rank
  int color = 0;            // split only
  int key = 0;              // split only
  std::string local_error;  // this rank's own argument error: every rank fails with it
};

struct ThreadMessage {
  std::vector<std::byte> bytes;
  core::DType dtype = core::DType::kU8;
  std::string what;
};

struct ThreadPendingSplit {
  std::shared_ptr<ThreadWorld> world;
  int taken = 0;
};

struct ThreadWorld {
  std::shared_ptr<ThreadHub> hub;
  int size = 0;
  CommOptions options;
  std::string origin;  // "" for a root world, else " (split color c of thread rank r/n)"
  // Generation barrier (guarded by hub->mu).
  uint64_t generation = 0;
  int arrived = 0;
  std::vector<char> arrived_flag;
  std::vector<ThreadCollectiveEntry> entries;
  // mailboxes[src * size + dst], FIFO per pair.
  std::vector<std::deque<ThreadMessage>> mailboxes;
  // Children under construction, keyed by (split number, color).
  std::vector<uint64_t> splits_done;
  std::map<std::pair<uint64_t, int>, ThreadPendingSplit> pending_splits;

  ThreadWorld(std::shared_ptr<ThreadHub> h, int n, CommOptions o, std::string from)
      : hub(std::move(h)), size(n), options(o), origin(std::move(from)),
        arrived_flag(n, 0), entries(n), mailboxes(static_cast<size_t>(n) * n), splits_done(n, 0) {}

  Clock::time_point deadline() const {
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(
                              std::chrono::duration<double>(options.timeout_s));
  }
};

namespace {

std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

}  // namespace

ThreadComm::ThreadComm(std::shared_ptr<ThreadWorld> world, int rank)
    : world_(std::move(world)), rank_(rank) {}

ThreadComm::~ThreadComm() = default;

int ThreadComm::size() const { return world_->size; }

std::string ThreadComm::description() const {
  return fmt::format("thread rank {}/{}{}", rank_, world_->size, world_->origin);
}

void ThreadComm::abort(const Status& reason) {
  std::lock_guard<std::mutex> lock(world_->hub->mu);
  world_->hub->abort_locked(reason);
}

Status ThreadComm::abort_status() const {
  std::lock_guard<std::mutex> lock(world_->hub->mu);
  return world_->hub->aborted ? world_->hub->abort_status : Status::ok();
}

Status ThreadComm::check_peer(int peer, const char* op) const {
  if (peer < 0 || peer >= world_->size) {
    return core::invalid_argument("{}: {} peer {} is outside [0, {})", description(), op, peer,
                                  world_->size);
  }
  return Status::ok();
}

// Waits, with the lock held, until every rank of the world has arrived at this generation.
// A timeout names the ranks that never arrived and aborts the whole family of worlds.
static Status arrive_and_wait(ThreadWorld& w, std::unique_lock<std::mutex>& lock, int rank,
                              const std::string& who, const char* op, Clock::time_point deadline) {
  ThreadHub& hub = *w.hub;
  auto aborted_error = [&] {
    return core::make_error(hub.abort_status.code(), "{}: {} failed: world aborted: {}", who, op,
                            hub.abort_status.message());
  };
  if (hub.aborted) return aborted_error();
  uint64_t gen = w.generation;
  w.arrived_flag[rank] = 1;
  if (++w.arrived == w.size) {
    w.arrived = 0;
    std::fill(w.arrived_flag.begin(), w.arrived_flag.end(), 0);
    ++w.generation;
    hub.cv.notify_all();
    return Status::ok();
  }
  while (true) {
    if (w.generation != gen) return Status::ok();
    if (hub.aborted) return aborted_error();
    if (hub.cv.wait_until(lock, deadline) == std::cv_status::timeout && w.generation == gen &&
        !hub.aborted) {
      std::vector<int> missing;
      for (int r = 0; r < w.size; ++r) {
        if (!w.arrived_flag[r]) missing.push_back(r);
      }
      Status error = core::make_error(
          core::StatusCode::kFailedPrecondition,
          "{}: {} timed out after {} s waiting for peer rank(s) {} (timeout_s in CommOptions)", who,
          op, w.options.timeout_s, rank_list(missing));
      hub.abort_locked(error);
      return error;
    }
  }
}

Status ThreadComm::collective(ThreadCollectiveEntry mine, const ComputeFn& compute) {
  ThreadWorld& w = *world_;
  const std::string who = description();
  const char* op = mine.op;
  auto deadline = w.deadline();
  {
    std::unique_lock<std::mutex> lock(w.hub->mu);
    w.entries[rank_] = std::move(mine);
    HYD_RETURN_IF_ERROR(arrive_and_wait(w, lock, rank_, who, op, deadline));
  }
  // Every rank sees the same entries, so every rank reaches the same verdict.
  std::span<const ThreadCollectiveEntry> entries(w.entries);
  Status result;
  for (int r = 0; r < w.size && result.is_ok(); ++r) {
    if (!entries[r].local_error.empty()) {
      result = core::invalid_argument("{}: {} failed on rank {}: {}", who, op, r,
                                      entries[r].local_error);
    }
  }
  for (int r = 0; r < w.size && result.is_ok(); ++r) {
    const ThreadCollectiveEntry& e = entries[r];
    if (std::strcmp(e.op, entries[0].op) != 0) {
      result = core::invalid_argument("{}: collective mismatch: rank 0 calls {}, rank {} calls {}",
                                      who, entries[0].op, r, e.op);
    } else if (e.nbytes != entries[0].nbytes || e.dtype != entries[0].dtype ||
               e.must_match != entries[0].must_match) {
      result = core::invalid_argument(
          "{}: {} arguments differ across ranks: rank 0 passes {} ({}), rank {} passes {} ({})", who,
          op, entries[0].what, entries[0].must_match, r, e.what, e.must_match);
    }
  }
  if (result.is_ok()) result = compute(entries);
  {
    std::unique_lock<std::mutex> lock(w.hub->mu);
    HYD_RETURN_IF_ERROR(arrive_and_wait(w, lock, rank_, who, op, deadline));
  }
  return result;
}

namespace {

// What a rank posts to a collective about its tensor: the data when the local checks passed, else
// the reason (every rank then fails the call with it).
void post_tensor(ThreadCollectiveEntry& e, const Status& local, const core::Tensor& t) {
  if (!local.is_ok()) {
    e.local_error = local.message();
    return;
  }
  e.data = t.raw_data();
  e.nbytes = t.nbytes();
  e.dtype = t.dtype();
  e.what = t.describe();
}

}  // namespace

Status ThreadComm::all_reduce(core::Tensor& t, ReduceOp op) {
  ThreadCollectiveEntry e;
  e.op = "all_reduce";
  Status local = check_tensor(t, core::Device::kCpu, description(), e.op, true);
  post_tensor(e, local, t);
  e.must_match = static_cast<int64_t>(op);
  std::vector<std::byte> result(local.is_ok() ? t.nbytes() : 0);
  HYD_RETURN_IF_ERROR(collective(std::move(e), [&](std::span<const ThreadCollectiveEntry> all) {
    std::vector<const void*> inputs;
    for (const auto& x : all) inputs.push_back(x.data);
    return reduce_in_order(t.dtype(), op, inputs, result.data(), t.numel());
  }));
  if (!result.empty()) std::memcpy(t.raw_data(), result.data(), result.size());
  return Status::ok();
}

Status ThreadComm::reduce_scatter(const core::Tensor& in, core::Tensor& out, ReduceOp op) {
  ThreadCollectiveEntry e;
  e.op = "reduce_scatter";
  Status local = check_tensor(in, core::Device::kCpu, description(), e.op, true);
  if (local.is_ok()) local = check_tensor(out, core::Device::kCpu, description(), e.op, true);
  if (local.is_ok() && (out.dtype() != in.dtype() || in.numel() != out.numel() * size())) {
    local = core::invalid_argument("{}: reduce_scatter needs out of {} elements of {} ({} ranks x "
                                   "out), got in {} and out {}",
                                   description(), in.numel() / std::max(1, size()),
                                   core::dtype_name(in.dtype()), size(), in.describe(),
                                   out.describe());
  }
  post_tensor(e, local, in);
  e.must_match = static_cast<int64_t>(op);
  std::vector<std::byte> result(local.is_ok() ? out.nbytes() : 0);
  HYD_RETURN_IF_ERROR(collective(std::move(e), [&](std::span<const ThreadCollectiveEntry> all) {
    std::vector<const void*> inputs;
    for (const auto& x : all) inputs.push_back(static_cast<const std::byte*>(x.data) + rank_ * out.nbytes());
    return reduce_in_order(in.dtype(), op, inputs, result.data(), out.numel());
  }));
  if (!result.empty()) std::memcpy(out.raw_data(), result.data(), result.size());
  return Status::ok();
}

Status ThreadComm::all_gather(const core::Tensor& in, core::Tensor& out) {
  ThreadCollectiveEntry e;
  e.op = "all_gather";
  Status local = check_tensor(in, core::Device::kCpu, description(), e.op, false);
  if (local.is_ok()) local = check_tensor(out, core::Device::kCpu, description(), e.op, false);
  if (local.is_ok() && (out.dtype() != in.dtype() || out.numel() != in.numel() * size())) {
    local = core::invalid_argument(
        "{}: all_gather needs out of {} ranks x {} elements of {}, got in {} and out {}",
        description(), size(), in.numel(), core::dtype_name(in.dtype()), in.describe(),
        out.describe());
  }
  post_tensor(e, local, in);
  std::vector<std::byte> result(local.is_ok() ? out.nbytes() : 0);
  HYD_RETURN_IF_ERROR(collective(std::move(e), [&](std::span<const ThreadCollectiveEntry> all) {
    for (size_t r = 0; r < all.size(); ++r) {
      std::memcpy(result.data() + r * in.nbytes(), all[r].data, in.nbytes());
    }
    return Status::ok();
  }));
  if (!result.empty()) std::memcpy(out.raw_data(), result.data(), result.size());
  return Status::ok();
}

Status ThreadComm::broadcast(core::Tensor& t, int root) {
  ThreadCollectiveEntry e;
  e.op = "broadcast";
  Status local = check_tensor(t, core::Device::kCpu, description(), e.op, false);
  if (local.is_ok()) local = check_peer(root, "broadcast root");
  post_tensor(e, local, t);
  e.must_match = root;
  std::vector<std::byte> result(local.is_ok() && rank_ != root ? t.nbytes() : 0);
  HYD_RETURN_IF_ERROR(collective(std::move(e), [&](std::span<const ThreadCollectiveEntry> all) {
    if (!result.empty()) std::memcpy(result.data(), all[root].data, result.size());
    return Status::ok();
  }));
  if (!result.empty()) std::memcpy(t.raw_data(), result.data(), result.size());
  return Status::ok();
}

Status ThreadComm::barrier() {
  ThreadCollectiveEntry e;
  e.op = "barrier";
  return collective(std::move(e), [](std::span<const ThreadCollectiveEntry>) { return Status::ok(); });
}

Status ThreadComm::post_send(const core::Tensor& t, int peer, const char* op) {
  HYD_RETURN_IF_ERROR(check_peer(peer, op));
  HYD_RETURN_IF_ERROR(check_tensor(t, core::Device::kCpu, description(), op, false));
  ThreadMessage message;
  message.bytes.resize(t.nbytes());
  if (t.nbytes() > 0) std::memcpy(message.bytes.data(), t.raw_data(), t.nbytes());
  message.dtype = t.dtype();
  message.what = t.describe();
  ThreadWorld& w = *world_;
  std::lock_guard<std::mutex> lock(w.hub->mu);
  if (w.hub->aborted) {
    return core::make_error(w.hub->abort_status.code(), "{}: {} to peer {} failed: world aborted: {}",
                            description(), op, peer, w.hub->abort_status.message());
  }
  w.mailboxes[static_cast<size_t>(rank_) * w.size + peer].push_back(std::move(message));
  w.hub->cv.notify_all();
  return Status::ok();
}

Status ThreadComm::send(const core::Tensor& t, int peer) { return post_send(t, peer, "send"); }

Status ThreadComm::recv(core::Tensor& t, int peer) {
  HYD_RETURN_IF_ERROR(check_peer(peer, "recv"));
  HYD_RETURN_IF_ERROR(check_tensor(t, core::Device::kCpu, description(), "recv", false));
  ThreadWorld& w = *world_;
  ThreadHub& hub = *w.hub;
  auto deadline = w.deadline();
  ThreadMessage message;
  {
    std::unique_lock<std::mutex> lock(hub.mu);
    auto& box = w.mailboxes[static_cast<size_t>(peer) * w.size + rank_];
    while (box.empty()) {
      if (hub.aborted) {
        return core::make_error(hub.abort_status.code(),
                                "{}: recv from peer {} failed: world aborted: {}", description(),
                                peer, hub.abort_status.message());
      }
      if (hub.cv.wait_until(lock, deadline) == std::cv_status::timeout && box.empty() &&
          !hub.aborted) {
        Status error = core::make_error(
            core::StatusCode::kFailedPrecondition,
            "{}: recv of {} from peer {} timed out after {} s: the peer sent nothing "
            "(timeout_s in CommOptions)",
            description(), t.describe(), peer, w.options.timeout_s);
        hub.abort_locked(error);
        return error;
      }
    }
    message = std::move(box.front());
    box.pop_front();
  }
  if (message.bytes.size() != t.nbytes() || message.dtype != t.dtype()) {
    return core::invalid_argument("{}: recv from peer {} got {}, expected {}", description(), peer,
                                  message.what, t.describe());
  }
  if (!message.bytes.empty()) std::memcpy(t.raw_data(), message.bytes.data(), message.bytes.size());
  return Status::ok();
}

Status ThreadComm::group_p2p(std::span<P2POp> ops) {
  for (const P2POp& p : ops) {
    HYD_RETURN_IF_ERROR(check_peer(p.peer, "group_p2p"));
    HYD_RETURN_IF_ERROR(check_tensor(p.tensor, core::Device::kCpu, description(), "group_p2p", false));
  }
  // Sends are buffered, so posting every send before the first receive cannot deadlock.
  for (const P2POp& p : ops) {
    if (p.kind == P2POp::Kind::kSend) HYD_RETURN_IF_ERROR(post_send(p.tensor, p.peer, "group_p2p send"));
  }
  for (P2POp& p : ops) {
    if (p.kind == P2POp::Kind::kRecv) HYD_RETURN_IF_ERROR(recv(p.tensor, p.peer));
  }
  return Status::ok();
}

namespace {

// The messages are already in the mailboxes (sends copy at once), so a posted receive is only a
// reservation: wait() takes them in posting order.
class ThreadPendingRecvs final : public PendingRecvs {
 public:
  ThreadPendingRecvs(ThreadComm& comm, std::vector<P2POp> recvs)
      : comm_(comm), recvs_(std::move(recvs)) {}
  Status wait() override {
    for (P2POp& p : recvs_) HYD_RETURN_IF_ERROR(comm_.recv(p.tensor, p.peer));
    recvs_.clear();
    return Status::ok();
  }

 private:
  ThreadComm& comm_;
  std::vector<P2POp> recvs_;
};

}  // namespace

core::StatusOr<std::unique_ptr<PendingRecvs>> ThreadComm::post_recvs(std::span<const P2POp> recvs) {
  for (const P2POp& p : recvs) {
    HYD_CHECK(p.kind == P2POp::Kind::kRecv, "post_recvs takes receives only");
    HYD_RETURN_IF_ERROR(check_peer(p.peer, "post_recvs"));
    HYD_RETURN_IF_ERROR(check_tensor(p.tensor, core::Device::kCpu, description(), "post_recvs", false));
  }
  return std::unique_ptr<PendingRecvs>(
      new ThreadPendingRecvs(*this, std::vector<P2POp>(recvs.begin(), recvs.end())));
}

core::StatusOr<std::shared_ptr<Communicator>> ThreadComm::split(int color, int key) {
  ThreadCollectiveEntry e;
  e.op = "split";
  e.color = color;
  e.key = key;
  std::shared_ptr<Communicator> child;
  HYD_RETURN_IF_ERROR(collective(std::move(e), [&](std::span<const ThreadCollectiveEntry> all) {
    ThreadWorld& w = *world_;
    std::lock_guard<std::mutex> lock(w.hub->mu);
    uint64_t split_number = w.splits_done[rank_]++;
    if (color < 0) return Status::ok();
    // New ranks: members of this color ordered by (key, old rank).
    std::vector<int> members;
    for (int r = 0; r < w.size; ++r) {
      if (all[r].color == color) members.push_back(r);
    }
    std::stable_sort(members.begin(), members.end(),
                     [&](int a, int b) { return all[a].key < all[b].key; });
    int new_rank = static_cast<int>(std::find(members.begin(), members.end(), rank_) - members.begin());
    auto& pending = w.pending_splits[{split_number, color}];
    if (!pending.world) {
      pending.world = std::make_shared<ThreadWorld>(
          w.hub, static_cast<int>(members.size()), w.options,
          fmt::format(" (split color {} of {} ranks{})", color, w.size, w.origin));
    }
    child = std::make_shared<ThreadComm>(pending.world, new_rank);
    if (++pending.taken == static_cast<int>(members.size())) {
      w.pending_splits.erase({split_number, color});
    }
    return Status::ok();
  }));
  return child;
}

std::vector<std::shared_ptr<Communicator>> make_thread_world(int size, CommOptions options) {
  HYD_CHECK(size >= 1, "make_thread_world: size = {}", size);
  auto world = std::make_shared<ThreadWorld>(std::make_shared<ThreadHub>(), size, options, "");
  std::vector<std::shared_ptr<Communicator>> ranks;
  for (int r = 0; r < size; ++r) ranks.push_back(std::make_shared<ThreadComm>(world, r));
  return ranks;
}

Status run_status_fn_on_threads(int size, const RankStatusFn& fn, CommOptions options) {
  if (size < 1) return core::invalid_argument("run_on_threads: size = {}, needs >= 1", size);
  auto ranks = make_thread_world(size, options);
  auto& first = static_cast<ThreadComm&>(*ranks[0]);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      Status failure;
      try {
        Status s = fn(*ranks[r]);
        if (!s.is_ok()) failure = s.with_context(fmt::format("rank {} failed", r));
      } catch (const std::exception& e) {
        failure = core::internal_error("rank {} failed: exception: {}", r, e.what());
      } catch (...) {
        failure = core::internal_error("rank {} failed: unknown exception", r);
      }
      if (!failure.is_ok()) first.abort(failure);
    });
  }
  for (auto& t : threads) t.join();
  // The first abort (a rank's failure or a timeout) is the root cause; later errors follow from it.
  return first.abort_status();
}

}  // namespace hydraulis::comm
