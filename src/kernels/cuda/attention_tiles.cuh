// Building blocks of the flash-attention kernels (attention_fwd.cu, attention_bwd.cu): the
// bf16 m16n8k16 tensor-core MMA, fragment packing, ldmatrix fragment loads (plain and transposed),
// cp.async tile loads into padded shared memory (row stride D + 8 elements = 16 bytes of padding:
// the 8 row addresses of one 8×8 ldmatrix land in distinct bank groups), the varlen schedule and
// the shared argument checks.
// Fragment layout of mma.m16n8k16 (g = lane / 4, c = lane % 4): A regs {(g, 2c), (g+8, 2c), (g,
// 2c+8), (g+8, 2c+8)} (each a bf16 pair along k), B regs {(k = 2c, n = g), (k = 2c+8, n = g)}, C/D
// {(g, 2c), (g, 2c+1), (g+8, 2c), (g+8, 2c+1)}.
#pragma once

#include "kernels/cuda/common.cuh"

namespace hydraulis::cuda::detail {

constexpr float kLog2e = 1.4426950408889634f;

// Argument checks shared by both directions of both ops (defined in attention_fwd.cu).
void check_attention_args(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                          const core::Tensor& cu_q, const core::Tensor& cu_k, const char* op);

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// The 32-bit word holding elements (row, col) and (row, col + 1) of a padded smem tile.
__device__ __forceinline__ uint32_t smem_pair(const bf16* tile, int stride, int row, int col) {
  return *reinterpret_cast<const uint32_t*>(tile + row * stride + col);
}

// ldmatrix.x4: lane l supplies the row address of matrix l / 8, row l % 8; register j receives
// matrix j's fragment (thread holds row lane / 4, columns 2·(lane % 4) and +1). The .trans form
// hands out the transpose (rows 2·(lane % 4) and +1 of column lane / 4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* p) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* p) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// Fragment addresses into a padded smem tile (row stride `ld` elements) for one lane:
// A operand, 16 rows × 16 k from (row0, k0), row-major [row][k]: {a0..a3} of mma_bf16.
__device__ __forceinline__ const bf16* frag_a(const bf16* tile, int ld, int row0, int k0,
                                              int lane) {
  return tile + (row0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + k0 + (lane >> 4) * 8;
}
// B operand stored [n][k] (k contiguous, e.g. K rows for Q·Kᵀ): n-blocks n0 and n0 + 8 over
// k0..k0+15 -> {b0, b1} of n-block n0 in r[0], r[1] and of n0 + 8 in r[2], r[3] (plain ldmatrix).
__device__ __forceinline__ const bf16* frag_b_nk(const bf16* tile, int ld, int n0, int k0,
                                                 int lane) {
  return tile + (n0 + (lane & 7) + (lane >> 4) * 8) * ld + k0 + ((lane >> 3) & 1) * 8;
}
// B operand stored [k][n] (n contiguous, e.g. V rows for P·V): same register order, through
// ldmatrix.trans.
__device__ __forceinline__ const bf16* frag_b_kn(const bf16* tile, int ld, int n0, int k0,
                                                 int lane) {
  return tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8;
}

// 2^x by the SFU alone (ex2.approx.ftz: results below 2^-126 flush to 0, harmless for softmax
// weights); plain exp2f adds the denormal-range fix-up instructions around it.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// 4-byte global -> shared copy (the per-row lse/delta of a tile); `valid` false zero-fills.
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool valid) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(a), "l"(src),
               "r"(valid ? 4 : 0));
}

// 16-byte global -> shared copy that bypasses registers; `bytes` = 0 zero-fills the destination
// (rows past the sequence end) without reading `src`.
__device__ __forceinline__ void cp_async16(bf16* dst, const bf16* src, int bytes) {
  uint32_t a = static_cast<uint32_t>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_group 0;\n" ::);
}

// Asynchronous twin of load_tile: rows [row0, row0 + kRows) into dst[r][d] (row stride kD + 8),
// zeros past `len`. Completes at the next cp_async_wait_all() + barrier.
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void load_tile_async(bf16* dst, const bf16* src, int64_t ld, int row0,
                                                int len) {
  constexpr int kVecPerRow = kD / 8;
#pragma unroll
  for (int i = threadIdx.x; i < kRows * kVecPerRow; i += kThreads) {
    int r = i / kVecPerRow, d = (i % kVecPerRow) * 8;
    bool in = row0 + r < len;
    cp_async16(dst + r * (kD + 8) + d, src + (in ? int64_t(row0 + r) * ld + d : 0), in ? 16 : 0);
  }
}

// Copies rows [row0, row0 + kRows) of one head of a (T, heads, D) tensor into smem
// dst[r][d] (row stride kD + 8); rows at or past `len` (the sequence end) become zeros.
// `src` points at the sequence's first token, head already applied; `ld` = heads·D.
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t ld, int row0,
                                          int len) {
  constexpr int kVecPerRow = kD / 8;
  for (int i = threadIdx.x; i < kRows * kVecPerRow; i += kThreads) {
    int r = i / kVecPerRow, d = (i % kVecPerRow) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < len) val = *reinterpret_cast<const uint4*>(src + int64_t(row0 + r) * ld + d);
    *reinterpret_cast<uint4*>(dst + r * (kD + 8) + d) = val;
  }
}

// Same rows, stored transposed: dst[d][r] (row stride kRows + 8).
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void load_tile_transposed(bf16* dst, const bf16* src, int64_t ld,
                                                     int row0, int len) {
  constexpr int kVecPerRow = kD / 8;
  for (int i = threadIdx.x; i < kRows * kVecPerRow; i += kThreads) {
    int r = i / kVecPerRow, d = (i % kVecPerRow) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (row0 + r < len) val = *reinterpret_cast<const uint4*>(src + int64_t(row0 + r) * ld + d);
    const bf16* e = reinterpret_cast<const bf16*>(&val);
#pragma unroll
    for (int j = 0; j < 8; ++j) dst[(d + j) * (kRows + 8) + r] = e[j];
  }
}

// Varlen schedule: block `index` of a grid of Σ_b ceil(L_b / kTile) (+ slack) tiles maps to
// sequence b and tile `tile` of it, the heaviest (last) causal tile of a sequence first.
// Returns false for slack blocks. One thread scans; the answer is broadcast through smem.
template <int kTile>
__device__ __forceinline__ bool find_tile(const int32_t* cu, int num_seqs, int index, int& seq,
                                          int& tile) {
  __shared__ int found[2];
  if (threadIdx.x == 0) {
    found[0] = -1;
    for (int b = 0; b < num_seqs; ++b) {
      int n = (cu[b + 1] - cu[b] + kTile - 1) / kTile;
      if (index < n) {
        found[0] = b;
        found[1] = n - 1 - index;
        break;
      }
      index -= n;
    }
  }
  __syncthreads();
  seq = found[0];
  tile = found[1];
  return seq >= 0;
}

}  // namespace hydraulis::cuda::detail
