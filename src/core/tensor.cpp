// Tensor storage, the CPU allocator and shape helpers.
#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace hydraulis::core {

namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* ptr = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (ptr == nullptr) throw std::bad_alloc();
    return ptr;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};

CpuAllocator g_cpu_allocator;
Allocator* g_allocators[2] = {&g_cpu_allocator, nullptr};

}  // namespace

std::string_view device_name(Device device) { return device == Device::kCpu ? "cpu" : "cuda"; }

void set_allocator(Device device, Allocator* allocator) {
  g_allocators[static_cast<int>(device)] = allocator;
}
Allocator* allocator_for(Device device) { return g_allocators[static_cast<int>(device)]; }

Storage::~Storage() {
  if (data != nullptr && allocator != nullptr) allocator->deallocate(data, bytes);
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) HYD_CHECK(d >= 0, "negative dimension in shape {}", shape_string(shape));
  Allocator* allocator = allocator_for(device);
  HYD_CHECK(allocator != nullptr, "no allocator registered for device {}", device_name(device));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = std::make_shared<Storage>();
  t.storage_->bytes = t.nbytes();
  t.storage_->device = device;
  t.storage_->allocator = allocator;
  t.storage_->data = allocator->allocate(t.storage_->bytes);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  HYD_CHECK(device == Device::kCpu, "Tensor::zeros on {} must go through the device backend",
            device_name(device));
  Tensor t = empty(shape, dtype, device);
  std::memset(t.raw_data(), 0, t.nbytes());
  return t;
}

int64_t Tensor::size(int64_t axis) const {
  if (axis < 0) axis += dim();
  HYD_CHECK(axis >= 0 && axis < dim(), "axis {} out of range for {}", axis, describe());
  return shape_[static_cast<size_t>(axis)];
}

Tensor Tensor::reshape(const Shape& shape) const {
  HYD_CHECK(shape_numel(shape) == numel(), "cannot reshape {} to {}", describe(),
            shape_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::narrow_rows(int64_t begin, int64_t end) const {
  HYD_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
            "narrow_rows({}, {}) out of range for {}", begin, end, describe());
  Tensor t = *this;
  int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  t.offset_bytes_ += static_cast<size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::clone() const {
  HYD_CHECK(device_ == Device::kCpu, "clone() of {} needs the device backend", describe());
  Tensor t = empty(shape_, dtype_, device_);
  std::memcpy(t.raw_data(), raw_data(), nbytes());
  return t;
}

std::string Tensor::describe() const {
  return fmt::format("{}{} on {}", dtype_name(dtype_), shape_string(shape_), device_name(device_));
}

}  // namespace hydraulis::core
