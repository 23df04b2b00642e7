// Residual additions and non-finite scans (dtype-dispatched, parallel over fixed chunks).
#include "model/tensor_ops.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::model {

void add(const core::Tensor& a, const core::Tensor& b, core::Tensor& y) {
  cpu::check_shape(b, a.shape(), "add b");
  cpu::check_shape(y, a.shape(), "add y");
  cpu::check_dtypes(a.dtype(), "add", {&a, &b, &y});
  cpu::dispatch_floating(a.dtype(), "add", [&]<typename T>(T) {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y.data<T>();
    cpu::parallel_for(a.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) py[i] = pa[i] + pb[i];
    });
  });
}

std::optional<int64_t> first_nonfinite(const core::Tensor& t) {
  std::optional<int64_t> first;
  cpu::dispatch_floating(t.dtype(), "first_nonfinite", [&]<typename T>(T) {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (!std::isfinite(p[i])) {
        first = i;
        return;
      }
    }
  });
  return first;
}

int64_t count_nonfinite(const core::Tensor& t) {
  int64_t n = 0;
  cpu::dispatch_floating(t.dtype(), "count_nonfinite", [&]<typename T>(T) {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) n += !std::isfinite(p[i]);
  });
  return n;
}

double element(const core::Tensor& t, int64_t i) {
  return t.dtype() == core::DType::kF64 ? t.data<double>()[i] : double(t.data<float>()[i]);
}

}  // namespace hydraulis::model
