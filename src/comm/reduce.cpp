// Rank-order reductions over host memory for the CPU backends (see reduce.h).
#include "comm/reduce.h"

#include <algorithm>
#include <vector>

namespace hydraulis::comm {
namespace {

template <typename T, typename Acc>
void reduce_typed(ReduceOp op, std::span<const void* const> inputs, void* out, int64_t n) {
  const T* first = static_cast<const T*>(inputs[0]);
  T* dst = static_cast<T*>(out);
  for (int64_t i = 0; i < n; ++i) {
    Acc acc = static_cast<Acc>(first[i]);
    for (size_t r = 1; r < inputs.size(); ++r) {
      Acc v = static_cast<Acc>(static_cast<const T*>(inputs[r])[i]);
      acc = op == ReduceOp::kSum ? acc + v : std::max(acc, v);
    }
    dst[i] = static_cast<T>(acc);
  }
}

}  // namespace

std::string_view reduce_op_name(ReduceOp op) { return op == ReduceOp::kSum ? "sum" : "max"; }

bool cpu_reducible(core::DType dtype) {
  using core::DType;
  return dtype == DType::kF32 || dtype == DType::kF64 || dtype == DType::kBF16 ||
         dtype == DType::kI32 || dtype == DType::kI64;
}

core::Status reduce_in_order(core::DType dtype, ReduceOp op, std::span<const void* const> inputs,
                             void* out, int64_t n) {
  using core::DType;
  if (inputs.empty()) return core::internal_error("reduce_in_order: no inputs");
  switch (dtype) {
    case DType::kF32: reduce_typed<float, float>(op, inputs, out, n); break;
    case DType::kF64: reduce_typed<double, double>(op, inputs, out, n); break;
    case DType::kI32: reduce_typed<int32_t, int32_t>(op, inputs, out, n); break;
    case DType::kI64: reduce_typed<int64_t, int64_t>(op, inputs, out, n); break;
    case DType::kBF16: reduce_typed<core::BFloat16, float>(op, inputs, out, n); break;
    default:
      return core::invalid_argument("cannot reduce {} tensors: supported are f32, f64, bf16, i32, i64",
                                    core::dtype_name(dtype));
  }
  return core::Status::ok();
}

ChunkRange chunk_range(int64_t n, int parts, int chunk) {
  int64_t base = n / parts;
  int64_t extra = n % parts;
  int64_t begin = chunk * base + std::min<int64_t>(chunk, extra);
  return {begin, begin + base + (chunk < extra ? 1 : 0)};
}

core::Status check_tensor(const core::Tensor& t, core::Device device, std::string_view who,
                          std::string_view op, bool needs_reduction) {
  if (!t.defined()) return core::invalid_argument("{}: {} got an undefined tensor", who, op);
  if (t.device() != device) {
    return core::invalid_argument("{}: {} needs a tensor on {}, got {}", who, op,
                                  core::device_name(device), t.describe());
  }
  if (needs_reduction && !cpu_reducible(t.dtype())) {
    return core::invalid_argument("{}: {} cannot reduce {}: supported are f32, f64, bf16, i32, i64",
                                  who, op, t.describe());
  }
  return core::Status::ok();
}

}  // namespace hydraulis::comm
