// cuDNN backend-graph implementation of varlen causal attention (attention_cudnn.h): the
// SDPA forward / backward operation graphs in the shape cuDNN's fused flash-attention engine
// recognises (the decomposition cuDNN's frontend uses: matmul, scale, padding mask from seq-len
// tensors, top-left causal mask from gen_index / cmp_ge / binary_select, softmax as max / sub /
// exp / sum / log, and the backward with dO·O row sums, fp32 dQ accumulator and, for
// grouped-query heads, full-head dK / dV reduced over each group), the plan cache and execution.
// Layout: packed THD tensors, (b, h, s, d) with strides (·, D, H·D, 1) and per-sequence ragged
// offsets cu[b]·H·D; Kᵀ is the same memory viewed as (b, hkv, d, s). Stats are cuDNN's padded
// (Bb, H, Sb, 1), converted to and from our (H, T) lse by attention_cudnn_kernels.cu.
// libcudnn.so.9 is loaded at run time (attention_cudnn_api.h); HYD_CUDNN_KNOBS_FWD / _BWD can
// replace the engines' knob choices for measurements (attention_cudnn_knobs.h).
// Tests: tests/kernels_cuda/attention_cudnn_test.cpp.
#include "kernels/cuda/attention_cudnn.h"

#include <cudnn.h>
#include <fmt/format.h>

#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cuda/attention_cudnn_api.h"
#include "kernels/cuda/attention_cudnn_kernels.h"
#include "kernels/cuda/attention_cudnn_knobs.h"
#include "kernels/cuda/cuda_check.h"

namespace hydraulis::cuda {

namespace {

using namespace cudnn_backend;

// A finalized execution plan and every descriptor it was built from (kept alive with it).
struct Plan {
  std::vector<std::unique_ptr<Descriptor>> parts;
  std::unique_ptr<Descriptor> plan;
  int64_t workspace_bytes = 0;
};

using Dims = std::array<int64_t, 4>;
using Desc = cudnnBackendDescriptor_t;

// Builds one operation graph; tensors and operations are owned here until finalize() moves them
// into the Plan.
class GraphBuilder {
 public:
  // Non-virtual tensor: device memory (or, by value, a host scalar) named by uid in the pack.
  Desc tensor(int64_t uid, cudnnDataType_t dtype, const Dims& dims, const Dims& strides,
              Desc ragged = nullptr, bool by_value = false) {
    return make_tensor(uid, dtype, dims, strides, ragged, false, by_value);
  }
  Desc scalar(int64_t uid) {  // f32 passed by value (host pointer in the variant pack)
    return make_tensor(uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, nullptr, false, true);
  }
  Desc virt(cudnnDataType_t dtype, const Dims& dims, const Dims& strides, Desc ragged = nullptr) {
    return make_tensor(next_virtual_uid_++, dtype, dims, strides, ragged, true, false);
  }

  void matmul(Desc a, Desc b, Desc c, Desc m_override, Desc n_override, Desc k_override) {
    Descriptor& mm = make(CUDNN_BACKEND_MATMUL_DESCRIPTOR);
    mm.set_dtype(CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_DATA_FLOAT);
    mm.finalize("matmul descriptor");
    Descriptor& op = make(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    op.set(CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    op.set(CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    op.set(CUDNN_ATTR_OPERATION_MATMUL_DESC, mm.get());
    if (m_override != nullptr) op.set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, m_override);
    if (n_override != nullptr) op.set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, n_override);
    if (k_override != nullptr) op.set(CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, k_override);
    add_op(op, "matmul");
  }

  // y = mode(x[, b[, t]]); gen_index takes an axis, binary_select picks x where t else b.
  void pointwise(cudnnPointwiseMode_t mode, Desc x, Desc b, Desc t, Desc y,
                 cudnnDataType_t precision = CUDNN_DATA_FLOAT, int64_t axis = -1) {
    Descriptor& pw = make(CUDNN_BACKEND_POINTWISE_DESCRIPTOR);
    pw.set(CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    pw.set_dtype(CUDNN_ATTR_POINTWISE_MATH_PREC, precision);
    if (axis >= 0) pw.set_int(CUDNN_ATTR_POINTWISE_AXIS, axis);
    pw.finalize("pointwise descriptor");
    Descriptor& op = make(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw.get());
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b != nullptr) op.set(CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    if (t != nullptr) op.set(CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t);
    op.set(CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    add_op(op, "pointwise");
  }

  void reduction(cudnnReduceTensorOp_t mode, Desc x, Desc y) {
    Descriptor& red = make(CUDNN_BACKEND_REDUCTION_DESCRIPTOR);
    red.set(CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode);
    red.set_dtype(CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_DATA_FLOAT);
    red.finalize("reduction descriptor");
    Descriptor& op = make(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_REDUCTION_DESC, red.get());
    op.set(CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    op.set(CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    add_op(op, "reduction");
  }

  void reshape(Desc x, Desc y) {  // y: the same elements under other dims / strides
    Descriptor& op = make(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR);
    op.set(CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x);
    op.set(CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y);
    add_op(op, "reshape");
  }

  // Operation graph -> heuristics (mode A) -> the first engine config that finalizes.
  std::unique_ptr<Plan> finalize(cudnnHandle_t handle, const std::string& what) {
    Descriptor& graph = make(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR);
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(ops_.size()),
              ops_.data());
    graph.set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    cudnnStatus_t st = graph.try_finalize();
    HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "{}: cuDNN rejects the operation graph: {}", what,
              status_text(st));
    Descriptor& heur = make(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
    heur.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph.get());
    cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    heur.set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
    st = heur.try_finalize();
    HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "{}: cuDNN heuristics fail: {}", what, status_text(st));
    int64_t count = 0;
    HYD_CUDNN_CHECK(api().get_attribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                        CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr));
    std::vector<Desc> configs;
    for (int64_t i = 0; i < count; ++i) configs.push_back(make(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR).get());
    int64_t returned = 0;
    if (count > 0) {
      HYD_CUDNN_CHECK(api().get_attribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                          CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned,
                                          configs.data()));
    }
    std::string failures;
    for (int64_t i = 0; i < returned; ++i) {
      auto plan = std::make_unique<Descriptor>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
      plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[size_t(i)]);
      st = plan->try_finalize();
      if (st != CUDNN_STATUS_SUCCESS) {
        failures += fmt::format("\n  engine config {}: {}", i, status_text(st));
        continue;
      }
      if (const KnobRequest request = knob_request(what); request.active()) {
        Desc config = with_knobs(graph.get(), configs[size_t(i)], request, what, parts_);
        plan = std::make_unique<Descriptor>(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
        plan->set(CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
        plan->set(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, config);
        st = plan->try_finalize();
        HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "{}: the engine rejects the knob choices of {}: {}",
                  what, request.variable, status_text(st));
      }
      auto result = std::make_unique<Plan>();
      HYD_CUDNN_CHECK(api().get_attribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                          CUDNN_TYPE_INT64, 1, nullptr, &result->workspace_bytes));
      result->plan = std::move(plan);
      result->parts = std::move(parts_);
      return result;
    }
    HYD_CHECK(false, "{}: cuDNN has no engine for this graph ({} configs from heuristics){}{}",
              what, returned, failures, returned == 0 ? "\n  last error: " + last_error() : "");
    return nullptr;
  }

 private:
  Descriptor& make(cudnnBackendDescriptorType_t type) {
    parts_.push_back(std::make_unique<Descriptor>(type));
    return *parts_.back();
  }
  void add_op(Descriptor& op, const char* what) {
    op.finalize(what);
    ops_.push_back(op.get());
  }
  Desc make_tensor(int64_t uid, cudnnDataType_t dtype, const Dims& dims, const Dims& strides,
                   Desc ragged, bool is_virtual, bool by_value) {
    Descriptor& t = make(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
    t.set_int(CUDNN_ATTR_TENSOR_UNIQUE_ID, uid);
    t.set_dtype(CUDNN_ATTR_TENSOR_DATA_TYPE, dtype);
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
    t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
    t.set_int(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, 16);
    bool flag = is_virtual;
    t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &flag);
    flag = by_value;
    t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &flag);
    if (ragged != nullptr) t.set(CUDNN_ATTR_TENSOR_RAGGED_OFFSET_DESC, ragged);
    t.finalize("tensor descriptor");
    return t.get();
  }

  std::vector<std::unique_ptr<Descriptor>> parts_;
  std::vector<Desc> ops_;
  int64_t next_virtual_uid_ = 1000;
};

// ---- the SDPA graphs -------------------------------------------------------------------------

// Variant-pack uids.
enum Uid : int64_t {
  kQ = 1, kK, kV, kO, kStats, kDO, kDQ, kDK, kDV, kSeqQ, kSeqKV, kQOff, kKVOff, kScale, kNegInf,
  kOne, kSoftmaxSum, kDQAccum, kDKFull, kDVFull
};

enum class Direction { kForward, kBackward };

// Plan key: direction, heads, kv heads, head dim, bucketed batch, bucketed max sequence length.
using PlanKey = std::tuple<Direction, int, int, int, int, int>;

// Tensors shared by both graphs: the seq-len and ragged-offset arrays and the scalars.
struct GraphInputs {
  int64_t b, h, hk, s, d;
  Desc seq_q, seq_kv, q_off, kv_off, scale, neg_inf;
  Dims score() const { return {b, h, s, s}; }
  Dims score_strides() const { return {h * s * s, s * s, s, 1}; }
  Dims rows() const { return {b, h, s, 1}; }  // one value per query row
  Dims rows_strides() const { return {h * s, s, 1, 1}; }
  Dims thd(int64_t heads) const { return {b, heads, s, d}; }  // packed (T, heads, D) rows
  Dims thd_strides(int64_t heads) const { return {s * heads * d, d, heads * d, 1}; }
  Dims kt(int64_t heads) const { return {b, heads, d, s}; }  // the same memory, transposed view
  Dims kt_strides(int64_t heads) const { return {s * heads * d, d, 1, heads * d}; }
};

GraphInputs make_inputs(GraphBuilder& g, const PlanKey& key) {
  auto [dir, H, Hkv, D, Bb, Sb] = key;
  GraphInputs in{Bb, H, Hkv, Sb, D, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  in.seq_q = g.tensor(kSeqQ, CUDNN_DATA_INT32, {in.b, 1, 1, 1}, {1, 1, 1, 1});
  in.seq_kv = g.tensor(kSeqKV, CUDNN_DATA_INT32, {in.b, 1, 1, 1}, {1, 1, 1, 1});
  in.q_off = g.tensor(kQOff, CUDNN_DATA_INT32, {in.b + 1, 1, 1, 1}, {1, 1, 1, 1});
  in.kv_off = g.tensor(kKVOff, CUDNN_DATA_INT32, {in.b + 1, 1, 1, 1}, {1, 1, 1, 1});
  in.scale = g.scalar(kScale);
  in.neg_inf = g.scalar(kNegInf);
  return in;
}

// Scores of rows >= seq_q or columns >= seq_kv become −inf (the padding mask).
Desc padding_mask(GraphBuilder& g, const GraphInputs& in, Desc x) {
  Desc row = g.virt(CUDNN_DATA_INT32, in.score(), in.score_strides());
  Desc col = g.virt(CUDNN_DATA_INT32, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, row, CUDNN_DATA_INT32, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, col, CUDNN_DATA_INT32, 3);
  Desc row_ok = g.virt(CUDNN_DATA_BOOLEAN, in.score(), in.score_strides());
  Desc col_ok = g.virt(CUDNN_DATA_BOOLEAN, in.score(), in.score_strides());
  Desc both = g.virt(CUDNN_DATA_BOOLEAN, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_CMP_LT, row, in.seq_q, nullptr, row_ok, CUDNN_DATA_BOOLEAN);
  g.pointwise(CUDNN_POINTWISE_CMP_LT, col, in.seq_kv, nullptr, col_ok, CUDNN_DATA_BOOLEAN);
  g.pointwise(CUDNN_POINTWISE_LOGICAL_AND, row_ok, col_ok, nullptr, both, CUDNN_DATA_BOOLEAN);
  Desc y = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, in.neg_inf, both, y);
  return y;
}

// Top-left causal mask: query row i keeps columns j <= i.
Desc causal_mask(GraphBuilder& g, const GraphInputs& in, Desc x) {
  Desc row = g.virt(CUDNN_DATA_INT32, in.score(), in.score_strides());
  Desc col = g.virt(CUDNN_DATA_INT32, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, row, CUDNN_DATA_FLOAT, 2);
  g.pointwise(CUDNN_POINTWISE_GEN_INDEX, x, nullptr, nullptr, col, CUDNN_DATA_FLOAT, 3);
  Desc keep = g.virt(CUDNN_DATA_BOOLEAN, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_CMP_GE, row, col, nullptr, keep, CUDNN_DATA_BOOLEAN);
  Desc y = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, x, in.neg_inf, keep, y);
  return y;
}

// S = scale · Q·Kᵀ with both masks (fp32 scores).
Desc masked_scores(GraphBuilder& g, const GraphInputs& in, Desc q, Desc kt) {
  Desc s = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.matmul(q, kt, s, in.seq_q, in.seq_kv, nullptr);
  Desc scaled = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_MUL, s, in.scale, nullptr, scaled);
  return padding_mask(g, in, scaled);
}

std::unique_ptr<Plan> build_forward(cudnnHandle_t handle, const PlanKey& key,
                                    const std::string& what) {
  GraphBuilder g;
  GraphInputs in = make_inputs(g, key);
  Desc q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, in.thd(in.h), in.thd_strides(in.h), in.q_off);
  Desc kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, in.kt(in.hk), in.kt_strides(in.hk), in.kv_off);
  Desc v = g.tensor(kV, CUDNN_DATA_BFLOAT16, in.thd(in.hk), in.thd_strides(in.hk), in.kv_off);
  Desc o = g.tensor(kO, CUDNN_DATA_BFLOAT16, in.thd(in.h), in.thd_strides(in.h), in.q_off);
  Desc stats = g.tensor(kStats, CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());

  Desc s = causal_mask(g, in, masked_scores(g, in, q, kt));
  // Softmax with stats = max + log Σ exp(s − max), the natural-log lse of the scaled scores.
  Desc max = g.virt(CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, s, max);
  Desc shifted = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_SUB, s, max, nullptr, shifted);
  Desc e = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_EXP, shifted, nullptr, nullptr, e);
  Desc sum = g.virt(CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, sum);
  Desc log_sum = g.virt(CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  g.pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, nullptr, log_sum);
  g.pointwise(CUDNN_POINTWISE_ADD, max, log_sum, nullptr, stats);
  Desc p = g.virt(CUDNN_DATA_BFLOAT16, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_DIV, e, sum, nullptr, p);
  g.matmul(p, v, o, in.seq_q, nullptr, in.seq_kv);
  return g.finalize(handle, what);
}

// dK or dV (b, hk, s, d) from the transposed (b, h, s_kv, s_q) matrix a and b (b, h, s_q, d):
// one matmul with H == Hkv; with groups, a full-head (b, h, s, d) result in the workspace
// (ragged like the output, rows H·D wide) summed over each group by a reduction.
void key_gradient(GraphBuilder& g, const GraphInputs& in, Desc a, Desc b, Desc out,
                  int64_t full_uid) {
  if (in.h == in.hk) {
    g.matmul(a, b, out, in.seq_kv, nullptr, in.seq_q);
    return;
  }
  Desc full = g.tensor(full_uid, CUDNN_DATA_BFLOAT16, in.thd(in.h), in.thd_strides(in.h),
                       in.kv_off);
  g.matmul(a, b, full, in.seq_kv, nullptr, in.seq_q);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, full, out);
}

std::unique_ptr<Plan> build_backward(cudnnHandle_t handle, const PlanKey& key,
                                     const std::string& what) {
  GraphBuilder g;
  GraphInputs in = make_inputs(g, key);
  const int64_t h = in.h, hk = in.hk;
  Desc q = g.tensor(kQ, CUDNN_DATA_BFLOAT16, in.thd(h), in.thd_strides(h), in.q_off);
  Desc kt = g.tensor(kK, CUDNN_DATA_BFLOAT16, in.kt(hk), in.kt_strides(hk), in.kv_off);
  Desc vt = g.tensor(kV, CUDNN_DATA_BFLOAT16, in.kt(hk), in.kt_strides(hk), in.kv_off);
  Desc o = g.tensor(kO, CUDNN_DATA_BFLOAT16, in.thd(h), in.thd_strides(h), in.q_off);
  Desc dout = g.tensor(kDO, CUDNN_DATA_BFLOAT16, in.thd(h), in.thd_strides(h), in.q_off);
  Desc stats = g.tensor(kStats, CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  Desc dq = g.tensor(kDQ, CUDNN_DATA_BFLOAT16, in.thd(h), in.thd_strides(h), in.q_off);
  Desc dk = g.tensor(kDK, CUDNN_DATA_BFLOAT16, in.thd(hk), in.thd_strides(hk), in.kv_off);
  Desc dv = g.tensor(kDV, CUDNN_DATA_BFLOAT16, in.thd(hk), in.thd_strides(hk), in.kv_off);
  Desc one = g.scalar(kOne);

  // delta = rowsum(dO ∘ O), (b, h, s, 1) in the workspace.
  Desc prod = g.virt(CUDNN_DATA_FLOAT, in.thd(h), {h * in.s * in.d, in.s * in.d, h * in.d, 1});
  g.pointwise(CUDNN_POINTWISE_MUL, dout, o, nullptr, prod);
  Desc rowsum = g.virt(CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, prod, rowsum);
  Desc delta = g.tensor(kSoftmaxSum, CUDNN_DATA_FLOAT, in.rows(), in.rows_strides());
  g.pointwise(CUDNN_POINTWISE_MUL, rowsum, one, nullptr, delta);

  // P = exp(S − lse) under both masks.
  Desc s = masked_scores(g, in, q, kt);
  Desc shifted = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_SUB, s, stats, nullptr, shifted);
  Desc masked = causal_mask(g, in, shifted);
  Desc p = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_EXP, masked, nullptr, nullptr, p);

  // dV = Pᵀ·dO.
  const Dims transposed{in.b, h, in.s, in.s}, transposed_strides{h * in.s * in.s, in.s * in.s, 1, in.s};
  Desc pt = g.virt(CUDNN_DATA_BFLOAT16, transposed, transposed_strides);
  g.reshape(p, pt);
  key_gradient(g, in, pt, dout, dv, kDVFull);

  // dS = scale · P ∘ (dO·Vᵀ − delta).
  Desc dp = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.matmul(dout, vt, dp, in.seq_q, in.seq_kv, nullptr);
  Desc dp_centered = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_SUB, dp, delta, nullptr, dp_centered);
  Desc ds_unscaled = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_MUL, dp_centered, p, nullptr, ds_unscaled);
  Desc ds = g.virt(CUDNN_DATA_FLOAT, in.score(), in.score_strides());
  g.pointwise(CUDNN_POINTWISE_MUL, ds_unscaled, in.scale, nullptr, ds);

  // dK = dSᵀ·Q.
  Desc dst = g.virt(CUDNN_DATA_BFLOAT16, transposed, transposed_strides);
  g.reshape(ds, dst);
  key_gradient(g, in, dst, q, dk, kDKFull);

  // dQ = dS·K through an fp32 accumulator (ragged like dQ) in the workspace.
  Desc k_rows = g.virt(CUDNN_DATA_BFLOAT16, in.thd(hk), in.thd_strides(hk), in.kv_off);
  g.reshape(kt, k_rows);
  Desc dq_accum = g.tensor(kDQAccum, CUDNN_DATA_FLOAT, in.thd(h), in.thd_strides(h), in.q_off);
  g.matmul(ds, k_rows, dq_accum, in.seq_q, nullptr, in.seq_kv);
  g.pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, nullptr, nullptr, dq);
  return g.finalize(handle, what);
}

// ---- plan cache, handle, execution -----------------------------------------------------------

struct State {
  std::mutex mutex;
  std::map<int, cudnnHandle_t> handles;  // device -> handle
  std::map<std::pair<int, PlanKey>, std::unique_ptr<Plan>> plans;
};

// Never destroyed: plans and handles live until exit (no teardown after the CUDA context).
State& state() {
  static State* s = new State;
  return *s;
}

// The call's geometry: batch B, its bucket Bb, the longest sequence's bucket Sb.
struct Geometry {
  int B, Bb, Sb;
};

int bucket_batch(int B) { return int(std::bit_ceil(unsigned(B))); }
int bucket_length(int max_len) { return std::max(64, int(std::bit_ceil(unsigned(std::max(1, max_len))))); }

// The longest sequence of the last cu_seqlens read, kept with a reference to that tensor: while
// it is held its memory cannot be reused, so the same pointer means the same offsets (cu_seqlens
// are never written after upload), and a layer's forward and backward calls after the first read
// nothing.
struct LastLengths {
  core::Tensor cu;
  int max_len = 0;
};

Geometry geometry(const core::Tensor& cu, int T, cudaStream_t stream, const char* op) {
  const int B = int(cu.numel() - 1);
  int max_len = T;  // one sequence: no host read
  thread_local LastLengths& last = *new LastLengths;  // never destroyed (device memory at exit)
  if (B > 1 && last.cu.defined() && last.cu.raw_data() == cu.raw_data() &&
      last.cu.numel() == cu.numel()) {
    max_len = last.max_len;
  } else if (B > 1) {
    std::vector<int32_t> host(size_t(B) + 1);
    HYD_CUDA_CHECK(cudaMemcpyAsync(host.data(), cu.raw_data(), host.size() * sizeof(int32_t),
                                   cudaMemcpyDeviceToHost, stream));
    HYD_CUDA_CHECK(cudaStreamSynchronize(stream));
    HYD_CHECK(host[0] == 0 && host[size_t(B)] == T, "{}: cu_seqlens must run from 0 to T = {}, "
              "runs from {} to {}", op, T, host[0], host[size_t(B)]);
    max_len = 0;
    for (int b = 0; b < B; ++b) {
      HYD_CHECK(host[size_t(b) + 1] >= host[size_t(b)], "{}: cu_seqlens decreases at {}: {} -> {}",
                op, b, host[size_t(b)], host[size_t(b) + 1]);
      max_len = std::max(max_len, host[size_t(b) + 1] - host[size_t(b)]);
    }
    last.cu = cu;
    last.max_len = max_len;
  }
  return {B, bucket_batch(B), bucket_length(max_len)};
}

bool available_cached(std::string* why) {
  static std::string reason;
  static const bool ok = cudnn_attention_available(&reason);
  if (why != nullptr) *why = reason;
  return ok;
}

// Finds or builds the plan for key on the current device and binds the handle to stream.
// Call with the state mutex held.
std::pair<const Plan*, cudnnHandle_t> plan_for(const PlanKey& key, cudaStream_t stream,
                                               const char* op) {
  State& st = state();
  int device = 0;
  HYD_CUDA_CHECK(cudaGetDevice(&device));
  cudnnHandle_t& handle = st.handles[device];
  if (handle == nullptr) HYD_CUDNN_CHECK(api().create(&handle));
  HYD_CUDNN_CHECK(api().set_stream(handle, stream));
  std::unique_ptr<Plan>& plan = st.plans[{device, key}];
  if (plan == nullptr) {
    auto [dir, H, Hkv, D, Bb, Sb] = key;
    std::string what = fmt::format("{} (H = {}, Hkv = {}, D = {}, batch bucket {}, sequence "
                                   "bucket {}, cuDNN {})", op, H, Hkv, D, Bb, Sb, api().version);
    plan = dir == Direction::kForward ? build_forward(handle, key, what)
                                      : build_backward(handle, key, what);
  }
  return {plan.get(), handle};
}

// Carves 256-byte aligned pieces out of one workspace allocation.
class WorkspaceLayout {
 public:
  size_t add(size_t bytes) {
    size_t at = size_;
    size_ += (bytes + 255) / 256 * 256;
    return at;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

void execute(const Plan& plan, cudnnHandle_t handle, const std::vector<int64_t>& uids,
             const std::vector<void*>& pointers, void* workspace, const char* op) {
  Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(pointers.size()),
           pointers.data());
  pack.set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  pack.finalize("variant pack");
  cudnnStatus_t st = api().execute(handle, plan.plan->get(), pack.get());
  HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "{}: cudnnBackendExecute failed: {}", op, status_text(st));
}

void* at(core::Tensor& workspace, size_t offset) {
  return static_cast<char*>(workspace.raw_data()) + offset;
}

// The per-step sequence lengths and ragged offsets of both directions: slots reserved in the
// workspace layout, then filled from cu_seqlens once the workspace exists.
struct Offsets {
  size_t seq_slot = 0, q_slot = 0, kv_slot = 0;
  int32_t *seq = nullptr, *q_off = nullptr, *kv_off = nullptr;

  Offsets(WorkspaceLayout& layout, int Bb)
      : seq_slot(layout.add(size_t(Bb) * sizeof(int32_t))),
        q_slot(layout.add((size_t(Bb) + 1) * sizeof(int32_t))),
        kv_slot(layout.add((size_t(Bb) + 1) * sizeof(int32_t))) {}

  void fill(core::Tensor& workspace, const int32_t* cu, const Geometry& geo, int H, int Hkv, int D,
            cudaStream_t stream) {
    seq = static_cast<int32_t*>(at(workspace, seq_slot));
    q_off = static_cast<int32_t*>(at(workspace, q_slot));
    kv_off = static_cast<int32_t*>(at(workspace, kv_slot));
    detail::cudnn_attention_offsets(cu, geo.B, geo.Bb, int64_t(H) * D, int64_t(Hkv) * D, seq,
                                    q_off, kv_off, stream);
  }
};

core::Tensor make_workspace(const WorkspaceLayout& layout) {
  return core::Tensor::empty({int64_t(layout.size())}, core::DType::kU8, core::Device::kCuda);
}

}  // namespace

bool cudnn_attention_available(std::string* why) {
  auto fail = [&](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  const CudnnApi& a = api();
  if (!a.loaded) return fail(a.error);
  if (a.version < 90600 || a.version >= 100000) {
    return fail(fmt::format("cuDNN {} loaded; the attention graphs need cuDNN 9.6 or newer 9.x",
                            a.version));
  }
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return fail("no CUDA device");
  }
  if (major != 9) {
    return fail(fmt::format("device {} is sm_{}{}; the cuDNN attention path is for sm_90", device,
                            major, minor));
  }
  if (why != nullptr) why->clear();
  return true;
}

void cudnn_attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                         const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse,
                         cudaStream_t stream) {
  const char* op = "cudnn_attention_fwd";
  detail::check_cudnn_attention_fwd_args(q, k, v, cu_seqlens, out, lse);
  std::string why;
  HYD_CHECK(available_cached(&why), "{}: cuDNN attention unavailable: {}", op, why);
  const int T = int(q.size(0)), H = int(q.size(1)), Hkv = int(k.size(1)), D = int(q.size(2));
  if (T == 0) return;
  const Geometry geo = geometry(cu_seqlens, T, stream, op);
  HYD_CHECK(int64_t(geo.Bb) * H <= 65535, "{}: {} sequences × {} heads is too many", op, geo.B, H);

  std::lock_guard<std::mutex> lock(state().mutex);
  auto [plan, handle] = plan_for({Direction::kForward, H, Hkv, D, geo.Bb, geo.Sb}, stream, op);
  WorkspaceLayout layout;
  const size_t ws_cudnn = layout.add(size_t(plan->workspace_bytes));
  const size_t ws_stats = layout.add(size_t(geo.Bb) * H * geo.Sb * sizeof(float));
  Offsets offsets(layout, geo.Bb);
  core::Tensor workspace = make_workspace(layout);
  auto* stats = static_cast<float*>(at(workspace, ws_stats));
  const auto* cu = static_cast<const int32_t*>(cu_seqlens.raw_data());
  offsets.fill(workspace, cu, geo, H, Hkv, D, stream);
  int32_t *seq = offsets.seq, *q_off = offsets.q_off, *kv_off = offsets.kv_off;
  float scale = float(1.0 / std::sqrt(double(D)));
  float neg_inf = -std::numeric_limits<float>::infinity();
  execute(*plan, handle, {kQ, kK, kV, kO, kStats, kSeqQ, kSeqKV, kQOff, kKVOff, kScale, kNegInf},
          {const_cast<void*>(q.raw_data()), const_cast<void*>(k.raw_data()),
           const_cast<void*>(v.raw_data()), out.raw_data(), stats, seq, seq, q_off, kv_off,
           &scale, &neg_inf},
          at(workspace, ws_cudnn), op);
  detail::cudnn_stats_to_lse(stats, cu, geo.B, H, geo.Sb, T, static_cast<float*>(lse.raw_data()),
                             stream);
}

void cudnn_attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                         const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                         const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                         core::Tensor& dv, cudaStream_t stream) {
  const char* op = "cudnn_attention_bwd";
  detail::check_cudnn_attention_bwd_args(dout, q, k, v, out, lse, cu_seqlens, dq, dk, dv);
  std::string why;
  HYD_CHECK(available_cached(&why), "{}: cuDNN attention unavailable: {}", op, why);
  const int T = int(q.size(0)), H = int(q.size(1)), Hkv = int(k.size(1)), D = int(q.size(2));
  if (T == 0) return;
  const Geometry geo = geometry(cu_seqlens, T, stream, op);
  HYD_CHECK(int64_t(geo.Bb) * H <= 65535, "{}: {} sequences × {} heads is too many", op, geo.B, H);

  std::lock_guard<std::mutex> lock(state().mutex);
  auto [plan, handle] = plan_for({Direction::kBackward, H, Hkv, D, geo.Bb, geo.Sb}, stream, op);
  const size_t rows_bytes = size_t(geo.Bb) * H * geo.Sb * sizeof(float);
  const size_t full_bytes = size_t(T) * H * D * sizeof(float);  // fp32 sized, as cuDNN's frontend
  WorkspaceLayout layout;
  const size_t ws_cudnn = layout.add(size_t(plan->workspace_bytes));
  const size_t ws_stats = layout.add(rows_bytes);
  const size_t ws_delta = layout.add(rows_bytes);
  const size_t ws_dq_accum = layout.add(full_bytes);
  const size_t ws_dk_full = H != Hkv ? layout.add(full_bytes) : 0;
  const size_t ws_dv_full = H != Hkv ? layout.add(full_bytes) : 0;
  Offsets offsets(layout, geo.Bb);
  core::Tensor workspace = make_workspace(layout);
  auto* stats = static_cast<float*>(at(workspace, ws_stats));
  const auto* cu = static_cast<const int32_t*>(cu_seqlens.raw_data());
  offsets.fill(workspace, cu, geo, H, Hkv, D, stream);
  int32_t *seq = offsets.seq, *q_off = offsets.q_off, *kv_off = offsets.kv_off;
  detail::cudnn_lse_to_stats(static_cast<const float*>(lse.raw_data()), cu, geo.B, geo.Bb, H,
                             geo.Sb, T, stats, stream);
  float scale = float(1.0 / std::sqrt(double(D)));
  float neg_inf = -std::numeric_limits<float>::infinity();
  float one = 1.f;
  std::vector<int64_t> uids{kQ,  kK,     kV,    kO,     kDO,    kStats,  kDQ,   kDK,
                            kDV, kSeqQ,  kSeqKV, kQOff, kKVOff, kScale, kNegInf, kOne,
                            kSoftmaxSum, kDQAccum};
  std::vector<void*> ptrs{const_cast<void*>(q.raw_data()),    const_cast<void*>(k.raw_data()),
                          const_cast<void*>(v.raw_data()),    const_cast<void*>(out.raw_data()),
                          const_cast<void*>(dout.raw_data()), stats,
                          dq.raw_data(),                      dk.raw_data(),
                          dv.raw_data(),                      seq,
                          seq,                                q_off,
                          kv_off,                             &scale,
                          &neg_inf,                           &one,
                          at(workspace, ws_delta),            at(workspace, ws_dq_accum)};
  if (H != Hkv) {
    uids.insert(uids.end(), {kDKFull, kDVFull});
    ptrs.insert(ptrs.end(), {at(workspace, ws_dk_full), at(workspace, ws_dv_full)});
  }
  execute(*plan, handle, uids, ptrs, at(workspace, ws_cudnn), op);
}

}  // namespace hydraulis::cuda
