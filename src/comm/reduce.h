// Host-side helpers shared by the CPU backends (ThreadComm, MpiComm): the rank-order reduction
// that makes all_reduce/reduce_scatter deterministic, chunk bounds of a split tensor, and the
// tensor checks every call runs first. Tests: tests/comm/comm_test.cpp (ReduceTest).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "comm/communicator.h"
#include "core/status.h"
#include "core/tensor.h"

namespace hydraulis::comm {

std::string_view reduce_op_name(ReduceOp op);

// True for the element types the CPU backends reduce: f32, f64, bf16, i32, i64.
bool cpu_reducible(core::DType dtype);

// out[i] = ((in[0][i] op in[1][i]) op in[2][i]) ... over `inputs` in order (rank order), for n
// elements of `dtype`. bf16 accumulates in f32 and rounds once at the end, so the result is the
// same whichever rank computes it. `out` may alias inputs[0] (and only inputs[0]).
core::Status reduce_in_order(core::DType dtype, ReduceOp op, std::span<const void* const> inputs,
                             void* out, int64_t n);

// Chunk c of n elements split into `parts` near-equal chunks: [begin, end). The first n % parts
// chunks get one element more. Example: n = 10, parts = 4 -> [0,3) [3,6) [6,8) [8,10).
struct ChunkRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
ChunkRange chunk_range(int64_t n, int parts, int chunk);

// Checks `t` is defined, lives on `device` and (for reductions) has a reducible dtype;
// the error names `who` ("thread rank 1/4") and `op`.
core::Status check_tensor(const core::Tensor& t, core::Device device, std::string_view who,
                          std::string_view op, bool needs_reduction);

}  // namespace hydraulis::comm
