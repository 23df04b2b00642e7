// Small elementwise helpers of the model code that are not kernels of the op table: residual
// additions and the non-finite scan behind the NaN/Inf diagnostics. f32 or f64, CPU tensors.
// Tests: tests/model/model_test.cpp (through the model).
#pragma once

#include <cstdint>
#include <optional>

#include "core/tensor.h"

namespace hydraulis::model {

// y = a + b (same shape; y may alias a or b).
void add(const core::Tensor& a, const core::Tensor& b, core::Tensor& y);

// Index of the first NaN/Inf element of `t`, if any.
std::optional<int64_t> first_nonfinite(const core::Tensor& t);
// Number of NaN/Inf elements.
int64_t count_nonfinite(const core::Tensor& t);
// Element i as double.
double element(const core::Tensor& t, int64_t i);

}  // namespace hydraulis::model
