// NcclComm on GPUs: every op for bf16, f32, i32 with exact per-rank data, a ring group_p2p, an
// ordered send/recv, split (with color < 0) and barrier. Registered twice: `gpu` (one rank, MPI
// singleton, one GPU) and `multigpu` (mpirun -np 2, one GPU per rank). Skips without a GPU.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "comm/nccl_comm.h"
#include "comm_checks.h"
#include "mpi_test_world.h"

namespace hydraulis::comm {
namespace {

using core::DType;
using core::Tensor;
using testing::expected_max;
using testing::expected_sum;
using testing::rank_value;

class CudaMallocAllocator : public core::Allocator {
 public:
  void* allocate(size_t bytes) override {
    void* p = nullptr;
    HYD_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes) == cudaSuccess, "cudaMalloc of {} bytes", bytes);
    return p;
  }
  void deallocate(void* ptr, size_t) override { cudaFree(ptr); }
};

Tensor to_device(const Tensor& host) {
  Tensor d = Tensor::empty(host.shape(), host.dtype(), core::Device::kCuda);
  HYD_CHECK(cudaMemcpy(d.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice) == cudaSuccess,
            "upload");
  return d;
}

Tensor to_host(const Tensor& device) {
  Tensor h = Tensor::empty(device.shape(), device.dtype());
  HYD_CHECK(cudaMemcpy(h.raw_data(), device.raw_data(), device.nbytes(), cudaMemcpyDeviceToHost) == cudaSuccess,
            "download");
  return h;
}

class NcclCommTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
    static CudaMallocAllocator allocator;
    core::set_allocator(core::Device::kCuda, &allocator);
    MpiComm& world = testing::mpi_test_world();
    auto nccl = NcclComm::create(world, world.rank() % devices, nullptr, world.options());
    ASSERT_TRUE(nccl.is_ok()) << nccl.status().to_string();
    comm_ = *nccl;
  }
  std::shared_ptr<NcclComm> comm_;
};

const DType kDtypes[] = {DType::kBF16, DType::kF32, DType::kI32};

void check_collectives(NcclComm& comm) {
  const int r = comm.rank(), n = comm.size();
  for (DType dtype : kDtypes) {
    const std::string ctx = std::string(testing::dtype_label(dtype)) + " " + comm.description();
    auto mine = [&](int64_t len, int64_t offset) {
      return testing::filled(dtype, len, [&](int64_t i) { return rank_value(dtype, r, i + offset); });
    };
    Tensor sum = to_device(mine(37, 0));
    Tensor max = to_device(mine(37, 0));
    HYD_EXPECT_OK(comm.all_reduce(sum, ReduceOp::kSum));
    HYD_EXPECT_OK(comm.all_reduce(max, ReduceOp::kMax));
    const int64_t chunk = 5;
    Tensor rs_in = to_device(mine(n * chunk, 0));
    Tensor rs_out = Tensor::empty({chunk}, dtype, core::Device::kCuda);
    HYD_EXPECT_OK(comm.reduce_scatter(rs_in, rs_out, ReduceOp::kSum));
    Tensor ag_in = to_device(mine(7, 0));
    Tensor ag_out = Tensor::empty({n * 7}, dtype, core::Device::kCuda);
    HYD_EXPECT_OK(comm.all_gather(ag_in, ag_out));
    Tensor bc = to_device(mine(9, 0));
    HYD_EXPECT_OK(comm.broadcast(bc, n - 1));
    HYD_EXPECT_OK(comm.synchronize());
    testing::expect_values(to_host(sum), [&](int64_t i) { return expected_sum(dtype, n, i); }, "all_reduce sum " + ctx);
    testing::expect_values(to_host(max), [&](int64_t i) { return expected_max(dtype, n, i); }, "all_reduce max " + ctx);
    testing::expect_values(to_host(rs_out), [&](int64_t i) { return expected_sum(dtype, n, r * chunk + i); },
                           "reduce_scatter " + ctx);
    testing::expect_values(to_host(ag_out), [&](int64_t i) { return rank_value(dtype, static_cast<int>(i / 7), i % 7); },
                           "all_gather " + ctx);
    testing::expect_values(to_host(bc), [&](int64_t i) { return rank_value(dtype, n - 1, i); }, "broadcast " + ctx);
  }
}

TEST_F(NcclCommTest, CollectivesOfEveryDtype) { check_collectives(*comm_); }

TEST_F(NcclCommTest, RingGroupP2P) {
  const int r = comm_->rank(), n = comm_->size();
  const int right = (r + 1) % n, left = (r + n - 1) % n;
  const DType dtype = DType::kBF16;
  std::vector<P2POp> ops(2);
  ops[0] = {P2POp::Kind::kSend, right,
            to_device(testing::filled(dtype, 6, [&](int64_t i) { return rank_value(dtype, r, i); }))};
  ops[1] = {P2POp::Kind::kRecv, left, Tensor::empty({6}, dtype, core::Device::kCuda)};
  HYD_EXPECT_OK(comm_->group_p2p(ops));
  HYD_EXPECT_OK(comm_->synchronize());
  testing::expect_values(to_host(ops[1].tensor), [&](int64_t i) { return rank_value(dtype, left, i); }, "ring");
}

TEST_F(NcclCommTest, OrderedSendRecv) {
  if (comm_->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int r = comm_->rank();
  if (r < 2) {
    Tensor t = to_device(testing::filled(DType::kF32, 4, [&](int64_t i) { return r * 1000 + i; }));
    Tensor got = Tensor::empty({4}, DType::kF32, core::Device::kCuda);
    if (r == 0) {
      HYD_EXPECT_OK(comm_->send(t, 1));
      HYD_EXPECT_OK(comm_->recv(got, 1));
    } else {
      HYD_EXPECT_OK(comm_->recv(got, 0));
      HYD_EXPECT_OK(comm_->send(t, 0));
    }
    HYD_EXPECT_OK(comm_->synchronize());
    testing::expect_values(to_host(got), [&](int64_t i) { return (1 - r) * 1000 + i; }, "send/recv");
  }
  HYD_EXPECT_OK(comm_->barrier());
}

TEST_F(NcclCommTest, SplitAndBarrier) {
  const int r = comm_->rank(), n = comm_->size();
  auto halves = comm_->split(r % 2, -r);
  ASSERT_TRUE(halves.is_ok()) << halves.status().to_string();
  ASSERT_NE(*halves, nullptr);
  auto& half = static_cast<NcclComm&>(**halves);
  EXPECT_EQ(half.size(), (n - r % 2 + 1) / 2);
  Tensor t = to_device(testing::filled(DType::kI32, 1, [&](int64_t) { return r; }));
  HYD_EXPECT_OK(half.all_reduce(t));
  HYD_EXPECT_OK(half.synchronize());
  double want = 0;
  for (int q = r % 2; q < n; q += 2) want += q;
  testing::expect_values(to_host(t), [&](int64_t) { return want; }, "split all_reduce");

  auto none = comm_->split(r == 0 ? -1 : 0, r);
  ASSERT_TRUE(none.is_ok()) << none.status().to_string();
  EXPECT_EQ(*none == nullptr, r == 0);
  HYD_EXPECT_OK(comm_->barrier());
}

// A recv that no rank sends to must fail, naming rank, peer and op, and abort the communicator
// (later calls fail at once). With 2+ ranks the enqueue succeeds and synchronize() times out;
// with one rank NCCL refuses the unmatched self-recv at once.
TEST_F(NcclCommTest, UnmatchedRecvFailsAndAborts) {
  MpiComm& world = testing::mpi_test_world();
  CommOptions options;
  options.timeout_s = 1.0;
  int devices = 0;
  ASSERT_EQ(cudaGetDeviceCount(&devices), cudaSuccess);
  auto nccl = NcclComm::create(world, world.rank() % devices, nullptr, options);
  ASSERT_TRUE(nccl.is_ok()) << nccl.status().to_string();
  NcclComm& comm = **nccl;
  const int peer = comm.size() > 1 ? 1 : 0;
  if (comm.rank() == 0) {
    Tensor t = Tensor::empty({8}, DType::kF32, core::Device::kCuda);
    core::Status s = comm.recv(t, peer);
    if (comm.size() > 1) {
      HYD_EXPECT_OK(s);
      s = comm.synchronize();
      ASSERT_FALSE(s.is_ok());
      EXPECT_NE(s.message().find("timed out after 1 s"), std::string::npos) << s.message();
    }
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("nccl rank 0/"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(fmt::format("recv from peer {}", peer)), std::string::npos) << s.message();
    core::Status later = comm.all_reduce(t);
    EXPECT_NE(later.message().find("aborted"), std::string::npos) << later.message();
  }
  HYD_EXPECT_OK(world.barrier());
}

TEST_F(NcclCommTest, RejectsHostTensors) {
  Tensor host = Tensor::zeros({2}, DType::kF32);
  core::Status s = comm_->all_reduce(host);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("needs a tensor on cuda"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace hydraulis::comm
