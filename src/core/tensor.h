// Tensor: a dense, contiguous, row-major n-d array with a dtype, a shape and a device.
// Storage is reference-counted and may be shared by views (reshape, narrow along dim 0).
// Device memory comes from an Allocator registered per device (the CUDA backend registers its
// caching allocator); CPU memory is 64-byte aligned. Tests: tests/core/tensor_test.cpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace hydraulis::core {

enum class Device : uint8_t { kCpu, kCuda };
std::string_view device_name(Device device);

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
};

// Registers the allocator for a device (not owned; must outlive every tensor on that device).
void set_allocator(Device device, Allocator* allocator);
Allocator* allocator_for(Device device);

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::kCpu;
  Allocator* allocator = nullptr;
  ~Storage();
};

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, Device device = Device::kCpu);
  static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::kCpu);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t axis) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw_data() { return static_cast<char*>(storage_->data) + offset_bytes_; }
  const void* raw_data() const { return static_cast<const char*>(storage_->data) + offset_bytes_; }
  template <typename T>
  T* data() {
    HYD_CHECK(dtype_of<T>() == dtype_, "tensor is {}, accessed as {}", dtype_name(dtype_),
              dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  template <typename T>
  const T* data() const {
    HYD_CHECK(dtype_of<T>() == dtype_, "tensor is {}, accessed as {}", dtype_name(dtype_),
              dtype_name(dtype_of<T>()));
    return static_cast<const T*>(raw_data());
  }

  // Same storage, new shape with the same element count.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) along dim 0, sharing storage.
  Tensor narrow_rows(int64_t begin, int64_t end) const;
  // Deep copy on the CPU (for CPU tensors).
  Tensor clone() const;
  std::string describe() const;  // "bf16[4, 128] on cuda"

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  Shape shape_;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
};

}  // namespace hydraulis::core
