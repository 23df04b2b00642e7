// Device plumbing: caching allocator reuse and accounting, host <-> device round trips, and the
// f32 <-> bf16 conversion kernels against core's exact host conversion (ties, NaN, Inf, tiny).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/cuda/energy.h"

namespace hydraulis::cuda {
namespace {

using testing::CudaTest;

// NVML's board counter: names the board by its PCI address and advances over half a second by
// a plausible board power (an idle or lightly loaded board: 10-1500 W). Skips where the driver
// library or the counter is missing.
TEST_F(CudaTest, EnergyCounterReadsTheBoard) {
  EnergyCounter energy;
  EXPECT_FALSE(energy.pci_bus_id().empty());
  if (!energy.available()) GTEST_SKIP() << "no NVML energy counter on this board";
  const double before = energy.joules();
  ASSERT_TRUE(std::isfinite(before));
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double after = energy.joules();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double watts = (after - before) / s;
  EXPECT_GT(watts, 10) << before << " -> " << after << " J over " << s << " s";
  EXPECT_LT(watts, 1500) << before << " -> " << after << " J over " << s << " s";
}

TEST_F(CudaTest, AllocatorReusesFreedBlocksAndCounts) {
  CachingAllocator& alloc = install_allocator();
  size_t base = alloc.bytes_in_use();
  void* a = alloc.allocate(1000);
  EXPECT_EQ(alloc.bytes_in_use(), base + 1024);  // rounded to 512 B
  alloc.deallocate(a, 1000);
  EXPECT_EQ(alloc.bytes_in_use(), base);
  void* b = alloc.allocate(1024);
  EXPECT_EQ(a, b);  // same size class comes back from the cache
  alloc.deallocate(b, 1024);
  void* big = alloc.allocate((size_t(3) << 20) + 1);  // rounded to 4 MiB
  EXPECT_EQ(alloc.bytes_in_use(), base + (size_t(4) << 20));
  alloc.deallocate(big, 0);
  void* small = alloc.allocate(100);  // never served from a block > 2x its size
  EXPECT_NE(small, big);
  alloc.deallocate(small, 100);
  alloc.release_cached();
  EXPECT_EQ(alloc.bytes_cached(), 0u);
}

TEST_F(CudaTest, TensorRoundTripThroughDevice) {
  core::Tensor host = core::Tensor::empty({3, 5}, core::DType::kI32);
  for (int i = 0; i < 15; ++i) host.data<int32_t>()[i] = i * 7 - 20;
  core::Tensor dev = to_device(host, stream_);
  EXPECT_EQ(dev.device(), core::Device::kCuda);
  core::Tensor back = to_host(dev, stream_);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(back.data<int32_t>()[i], i * 7 - 20);
  core::Tensor z = zeros({4}, core::DType::kF32, stream_);
  core::Tensor zh = to_host(z, stream_);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(zh.data<float>()[i], 0.f);
}

TEST_F(CudaTest, ConvertMatchesHostRoundToNearestEven) {
  std::vector<float> values = {0.f, -0.f, 1.f, 1.00390625f /* tie: 1 + 2^-8 */,
                               1.01171875f /* tie up: 1 + 3·2^-8 */, -3.14159f, 1e-40f, 65504.f,
                               3.0e38f, std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(), std::nanf("")};
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> dist(-1000.f, 1000.f);
  for (int i = 0; i < 4099; ++i) values.push_back(dist(rng));  // odd count: grid tail
  int64_t n = int64_t(values.size());
  core::Tensor host = core::Tensor::empty({n}, core::DType::kF32);
  for (int64_t i = 0; i < n; ++i) host.data<float>()[i] = values[size_t(i)];
  core::Tensor dev = to_device(host, stream_);
  core::Tensor dev_bf16 = core::Tensor::empty({n}, core::DType::kBF16, core::Device::kCuda);
  convert(dev, dev_bf16, stream_);
  core::Tensor bits = to_host(dev_bf16, stream_);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t want = core::float_to_bf16_bits(values[size_t(i)]);
    uint16_t got = bits.data<core::BFloat16>()[i].bits;
    if (std::isnan(values[size_t(i)])) {
      EXPECT_TRUE(std::isnan(core::bf16_bits_to_float(got)));
    } else {
      EXPECT_EQ(got, want) << "value " << values[size_t(i)];
    }
  }
  core::Tensor dev_f32 = core::Tensor::empty({n}, core::DType::kF32, core::Device::kCuda);
  convert(dev_bf16, dev_f32, stream_);
  core::Tensor back = to_host(dev_f32, stream_);
  for (int64_t i = 0; i < n; ++i) {
    float want = core::bf16_bits_to_float(bits.data<core::BFloat16>()[i].bits);
    if (!std::isnan(want)) {
      EXPECT_EQ(back.data<float>()[i], want);
    }
  }
}

}  // namespace
}  // namespace hydraulis::cuda
