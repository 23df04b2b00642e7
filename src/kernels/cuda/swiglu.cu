// SwiGLU kernels: each thread handles 8 consecutive columns of one token (16-byte loads of gate,
// up and dout) when F % 8 == 0 and pointers are aligned, else one column. Twin: cpu/swiglu.cpp.
#include "kernels/cuda/swiglu.h"

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;

// kWidth columns per thread (8: vector path, 1: scalar path).
template <int kWidth>
__global__ void swiglu_fwd_kernel(const bf16* __restrict__ gu, bf16* __restrict__ out, int T,
                                  int F) {
  int64_t groups = int64_t(T) * (F / kWidth);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < groups;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = idx / (F / kWidth);
    int f = int(idx % (F / kWidth)) * kWidth;
    const bf16* g = gu + t * 2 * F + f;  // gate columns
    const bf16* u = g + F;               // up columns
    bf16* o = out + t * F + f;
    if constexpr (kWidth == 8) {
      float gv[8], uv[8], ov[8];
      detail::load8(g, gv);
      detail::load8(u, uv);
#pragma unroll
      for (int i = 0; i < 8; ++i) ov[i] = gv[i] / (1.f + __expf(-gv[i])) * uv[i];
      detail::store8(o, ov);
    } else {
      float gv = __bfloat162float(*g), uv = __bfloat162float(*u);
      *o = __float2bfloat16_rn(gv / (1.f + __expf(-gv)) * uv);
    }
  }
}

// dgate = dout·up·σ(g)(1 + g(1 − σ(g))), dup = dout·silu(g). dgu may alias gu: every element is
// read before the same thread writes it.
template <int kWidth>
__global__ void swiglu_bwd_kernel(const bf16* __restrict__ dout, const bf16* gu, bf16* dgu, int T,
                                  int F) {
  int64_t groups = int64_t(T) * (F / kWidth);
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < groups;
       idx += int64_t(gridDim.x) * blockDim.x) {
    int64_t t = idx / (F / kWidth);
    int f = int(idx % (F / kWidth)) * kWidth;
    const bf16* g = gu + t * 2 * F + f;
    const bf16* u = g + F;
    const bf16* d = dout + t * F + f;
    bf16* dg = dgu + t * 2 * F + f;
    bf16* du = dg + F;
    float gv[kWidth], uv[kWidth], dv[kWidth], dgv[kWidth], duv[kWidth];
    if constexpr (kWidth == 8) {
      detail::load8(g, gv);
      detail::load8(u, uv);
      detail::load8(d, dv);
    } else {
      gv[0] = __bfloat162float(*g);
      uv[0] = __bfloat162float(*u);
      dv[0] = __bfloat162float(*d);
    }
#pragma unroll
    for (int i = 0; i < kWidth; ++i) {
      float sig = 1.f / (1.f + __expf(-gv[i]));
      dgv[i] = dv[i] * uv[i] * sig * (1.f + gv[i] * (1.f - sig));
      duv[i] = dv[i] * gv[i] * sig;
    }
    if constexpr (kWidth == 8) {
      detail::store8(dg, dgv);
      detail::store8(du, duv);
    } else {
      *dg = __float2bfloat16_rn(dgv[0]);
      *du = __float2bfloat16_rn(duv[0]);
    }
  }
}

}  // namespace

void swiglu_fwd(const core::Tensor& gate_up, core::Tensor& out, cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0,
            "swiglu_fwd: gate_up must be (T, 2F), is {}", gate_up.describe());
  int T = int(gate_up.size(0)), F = int(gate_up.size(1) / 2);
  detail::check_tensor(gate_up, DType::kBF16, {}, "swiglu_fwd gate_up");
  detail::check_tensor(out, DType::kBF16, {T, F}, "swiglu_fwd out");
  if (int64_t(T) * F == 0) return;
  bool vec = F % 8 == 0 && detail::aligned16(gate_up.raw_data()) && detail::aligned16(out.raw_data());
  int64_t work = int64_t(T) * F / (vec ? 8 : 1);
  int grid = detail::blocks_for(work, 256, 132 * 16);
  if (vec) {
    swiglu_fwd_kernel<8><<<grid, 256, 0, stream>>>(detail::ptr<bf16>(gate_up), detail::ptr<bf16>(out), T, F);
  } else {
    swiglu_fwd_kernel<1><<<grid, 256, 0, stream>>>(detail::ptr<bf16>(gate_up), detail::ptr<bf16>(out), T, F);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

void swiglu_bwd(const core::Tensor& dout, const core::Tensor& gate_up, core::Tensor& dgate_up,
                cudaStream_t stream) {
  using core::DType;
  HYD_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0,
            "swiglu_bwd: gate_up must be (T, 2F), is {}", gate_up.describe());
  int T = int(gate_up.size(0)), F = int(gate_up.size(1) / 2);
  detail::check_tensor(gate_up, DType::kBF16, {}, "swiglu_bwd gate_up");
  detail::check_tensor(dout, DType::kBF16, {T, F}, "swiglu_bwd dout");
  detail::check_tensor(dgate_up, DType::kBF16, gate_up.shape(), "swiglu_bwd dgate_up");
  if (int64_t(T) * F == 0) return;
  bool vec = F % 8 == 0 && detail::aligned16(gate_up.raw_data()) &&
             detail::aligned16(dout.raw_data()) && detail::aligned16(dgate_up.raw_data());
  int64_t work = int64_t(T) * F / (vec ? 8 : 1);
  int grid = detail::blocks_for(work, 256, 132 * 16);
  if (vec) {
    swiglu_bwd_kernel<8><<<grid, 256, 0, stream>>>(detail::ptr<bf16>(dout), detail::ptr<bf16>(gate_up),
                                                   detail::ptr<bf16>(dgate_up), T, F);
  } else {
    swiglu_bwd_kernel<1><<<grid, 256, 0, stream>>>(detail::ptr<bf16>(dout), detail::ptr<bf16>(gate_up),
                                                   detail::ptr<bf16>(dgate_up), T, F);
  }
  HYD_CUDA_LAUNCH_CHECK();
}

}  // namespace hydraulis::cuda
