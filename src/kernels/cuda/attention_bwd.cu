// Flash-attention backward over a packed varlen batch, in three deterministic kernels (no atomics);
// tiles stream through cp.async double buffers and operands come from padded smem by ldmatrix
// (the k-major operands K, Q, dO through ldmatrix.trans, so nothing is stored transposed):
//   delta[h, t] = dout_t·out_t;
//   dQ: per 64-query tile (as the forward): S = Q·Kᵀ, P = exp(S − lse), dP = dO·Vᵀ,
//       dS = P ⊙ (dP − Δ), dQ += dS·K over the key tiles up to the diagonal;
//   dK, dV: per 64-key tile and kv head, over every query head of its group and every 32-query
//       tile from the diagonal on: Pᵀ, dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ, dK += dSᵀ·Q.
// Both ops share the kernels: queries of segment s at cu_q[s].., keys at cu_k[s].., query i sees
// keys 0 .. i + shift with shift = k_len − q_len (plain attention: cu_q == cu_k, shift 0).
// Twin: cpu/attention.cpp (attention_bwd, attention_segments_bwd).
#include <cmath>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/attention_tiles.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;
// dQ kernel: kDqWarps warps of 16 query rows × 64-key tiles; dK/dV kernel: kDkvWarps warps of
// 16 key rows × 32-query tiles.
constexpr int kDqWarps = 4, kDkvWarps = 4;
constexpr int kDqThreads = kDqWarps * 32, kDkvThreads = kDkvWarps * 32;
constexpr int kBr = kDqWarps * 16, kBc = 64;
constexpr int kBk = kDkvWarps * 16, kBq = 32;

// delta[h, t] = Σ_d dout[t, h, d]·out[t, h, d]; one warp per (t, h).
__global__ void attention_delta_kernel(const bf16* __restrict__ dout, const bf16* __restrict__ out,
                                       float* __restrict__ delta, int T, int H, int D) {
  int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) >> 5;  // t·H + h
  int lane = threadIdx.x & 31;
  if (row >= int64_t(T) * H) return;
  const bf16* a = dout + row * D;
  const bf16* b = out + row * D;
  float acc = 0.f;
  for (int d = lane * 2; d < D; d += 64) {
    float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(a + d));
    float2 y = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(b + d));
    acc += x.x * y.x + x.y * y.y;
  }
  acc = detail::warp_sum(acc);
  if (lane == 0) delta[int64_t(row % H) * T + row / H] = acc;
}

template <int kD>
constexpr int dq_smem_bytes() {
  return (2 * kBr + 4 * kBc) * (kD + 8) * int(sizeof(bf16));  // Q, dO + 2 × (K, V)
}

template <int kD>
__global__ void __launch_bounds__(kDqThreads)
    attention_dq_kernel(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                        const bf16* __restrict__ k, const bf16* __restrict__ v,
                        const float* __restrict__ lse, const float* __restrict__ delta,
                        const int32_t* __restrict__ cu_q, const int32_t* __restrict__ cu_k,
                        int num_seqs, int Tq, int H, int Hkv, float scale, bf16* __restrict__ dq) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kS = kD + 8;
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // (kBr, kS)
  bf16* dOs = Qs + kBr * kS;                     // (kBr, kS)
  bf16* Ks = dOs + kBr * kS;                     // 2 × (kBc, kS)
  bf16* Vs = Ks + 2 * kBc * kS;                  // 2 × (kBc, kS)

  int seq, qt;
  if (!detail::find_tile<kBr>(cu_q, num_seqs, blockIdx.x, seq, qt)) return;
  const int h = blockIdx.y, hk = h / (H / Hkv);
  const int q_start = cu_q[seq], q_len = cu_q[seq + 1] - q_start, q0 = qt * kBr;
  const int k_start = cu_k[seq], k_len = cu_k[seq + 1] - k_start, shift = k_len - q_len;
  if (shift < 0) __trap();  // a segment with fewer keys than queries: invalid cu_seqlens_k
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const float scale_log2 = scale * detail::kLog2e;

  const int64_t q_off = (int64_t(q_start) * H + h) * kD, q_ld = int64_t(H) * kD;
  const int64_t kv_off = (int64_t(k_start) * Hkv + hk) * kD, kv_ld = int64_t(Hkv) * kD;
  detail::load_tile_async<kBr, kD, kDqThreads>(Qs, q + q_off, q_ld, q0, q_len);
  detail::load_tile_async<kBr, kD, kDqThreads>(dOs, dout + q_off, q_ld, q0, q_len);
  detail::load_tile_async<kBc, kD, kDqThreads>(Ks, k + kv_off, kv_ld, 0, k_len);
  detail::load_tile_async<kBc, kD, kDqThreads>(Vs, v + kv_off, kv_ld, 0, k_len);
  detail::cp_async_commit();
  const int row_lo = q0 + warp * 16;
  // The last key each of rows g and g + 8 sees (query i: i + shift); a row past the segment end
  // (i ≥ q_len) is exactly one with lim ≥ k_len. Only lim stays live (registers are tight).
  const int lim[2] = {row_lo + g + shift, row_lo + g + 8 + shift};
  const int64_t row_at = int64_t(h) * Tq + q_start - shift;  // (h, token of query i) at lim + this
  float lse2[2], dl[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    bool valid = lim[r] < k_len;
    lse2[r] = valid ? lse[row_at + lim[r]] * detail::kLog2e : 0.f;
    dl[r] = valid ? delta[row_at + lim[r]] : 0.f;
  }
  detail::cp_async_wait_all();
  __syncthreads();
  uint32_t qf[kD / 16][4], df[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    detail::ldmatrix_x4(qf[kk], detail::frag_a(Qs, kS, warp * 16, kk * 16, lane));
    detail::ldmatrix_x4(df[kk], detail::frag_a(dOs, kS, warp * 16, kk * 16, lane));
  }
  float acc[kD / 8][4] = {};
  const int warp_kt = row_lo < q_len ? (min(row_lo + 16, q_len) - 1 + shift) / kBc : -1;

  const int last_kt = (min(q0 + kBr, q_len) - 1 + shift) / kBc;  // the block's last key tile
  for (int kt = 0; kt <= last_kt; ++kt) {
    if (kt < last_kt) {
      const int nb = (kt + 1) & 1;
      detail::load_tile_async<kBc, kD, kDqThreads>(Ks + nb * kBc * kS, k + kv_off, kv_ld,
                                                   (kt + 1) * kBc, k_len);
      detail::load_tile_async<kBc, kD, kDqThreads>(Vs + nb * kBc * kS, v + kv_off, kv_ld,
                                                   (kt + 1) * kBc, k_len);
      detail::cp_async_commit();
    }
    if (kt <= warp_kt) {
      const bf16* Kb = Ks + (kt & 1) * kBc * kS;  // (kBc, kS)
      const bf16* Vb = Vs + (kt & 1) * kBc * kS;  // (kBc, kS)
      float s[kBc / 8][4] = {}, dp[kBc / 8][4] = {};
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
        for (int np = 0; np < kBc / 16; ++np) {
          uint32_t b[4];
          detail::ldmatrix_x4(b, detail::frag_b_nk(Kb, kS, np * 16, kk * 16, lane));
          detail::mma_bf16(s[2 * np], qf[kk], b[0], b[1]);
          detail::mma_bf16(s[2 * np + 1], qf[kk], b[2], b[3]);
          detail::ldmatrix_x4(b, detail::frag_b_nk(Vb, kS, np * 16, kk * 16, lane));
          detail::mma_bf16(dp[2 * np], df[kk], b[0], b[1]);
          detail::mma_bf16(dp[2 * np + 1], df[kk], b[2], b[3]);
        }
      }
      const bool masked = kt * kBc + kBc - 1 > lim[0] - g || (kt + 1) * kBc > k_len;
#pragma unroll
      for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          int r = e >> 1, key = kt * kBc + n * 8 + 2 * c + (e & 1);
          float p = detail::fast_exp2(fmaf(s[n][e], scale_log2, -lse2[r]));
          if (lim[r] >= k_len || (masked && key > lim[r])) p = 0.f;
          s[n][e] = p * (dp[n][e] - dl[r]);  // dS
        }
      }
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        uint32_t a[4] = {detail::pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                         detail::pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                         detail::pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                         detail::pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dp2 = 0; dp2 < kD / 16; ++dp2) {
          uint32_t b[4];
          detail::ldmatrix_x4_trans(b, detail::frag_b_kn(Kb, kS, dp2 * 16, kk * 16, lane));
          detail::mma_bf16(acc[2 * dp2], a, b[0], b[1]);
          detail::mma_bf16(acc[2 * dp2 + 1], a, b[2], b[3]);
        }
      }
    }
    detail::cp_async_wait_all();
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (lim[r] >= k_len) continue;
    bf16* row = dq + ((int64_t(q_start) - shift + lim[r]) * H + h) * kD;  // (kD)
#pragma unroll
    for (int n = 0; n < kD / 8; ++n) {
      *reinterpret_cast<__nv_bfloat162*>(row + n * 8 + 2 * c) =
          __floats2bfloat162_rn(acc[n][2 * r] * scale, acc[n][2 * r + 1] * scale);
    }
  }
}

template <int kD>
constexpr int dkv_smem_bytes() {
  return (2 * kBk + 4 * kBq) * (kD + 8) * int(sizeof(bf16)) + 4 * kBq * int(sizeof(float));
}

template <int kD>
__global__ void __launch_bounds__(kDkvThreads)
    attention_dkv_kernel(const bf16* __restrict__ dout, const bf16* __restrict__ q,
                         const bf16* __restrict__ k, const bf16* __restrict__ v,
                         const float* __restrict__ lse, const float* __restrict__ delta,
                         const int32_t* __restrict__ cu_q, const int32_t* __restrict__ cu_k,
                         int num_seqs, int Tq, int H, int Hkv, float scale, bf16* __restrict__ dk,
                         bf16* __restrict__ dv) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kS = kD + 8;
  bf16* Ks = reinterpret_cast<bf16*>(smem_raw);                 // (kBk, kS)
  bf16* Vs = Ks + kBk * kS;                                     // (kBk, kS)
  bf16* Qs = Vs + kBk * kS;                                     // 2 × (kBq, kS)
  bf16* dOs = Qs + 2 * kBq * kS;                                // 2 × (kBq, kS)
  float* lse_s = reinterpret_cast<float*>(dOs + 2 * kBq * kS);  // 2 × (kBq), natural log
  float* delta_s = lse_s + 2 * kBq;                             // 2 × (kBq)

  int seq, kt;
  if (!detail::find_tile<kBk>(cu_k, num_seqs, blockIdx.x, seq, kt)) return;
  const int hk = blockIdx.y, group = H / Hkv;
  const int q_start = cu_q[seq], q_len = cu_q[seq + 1] - q_start;
  const int k_start = cu_k[seq], k_len = cu_k[seq + 1] - k_start, shift = k_len - q_len;
  if (shift < 0) __trap();  // a segment with fewer keys than queries: invalid cu_seqlens_k
  // find_tile hands out the last tile first, the heaviest for queries; for keys the heaviest is
  // tile 0 (every later query sees it): reverse, so long blocks start first and short ones fill
  // the tail.
  kt = (k_len + kBk - 1) / kBk - 1 - kt;
  const int k0 = kt * kBk;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const float scale_log2 = scale * detail::kLog2e;

  const int64_t kv_off = (int64_t(k_start) * Hkv + hk) * kD, kv_ld = int64_t(Hkv) * kD;
  const int64_t q_ld = int64_t(H) * kD;
  // Work items: (query head of the group, query tile from the diagonal on), flattened so the
  // next item's Q/dO tile can be prefetched: item i -> head hk·group + i / nq, tile jt0 + i % nq.
  // Key k0 is first seen by query k0 − shift (query 0 when shift ≥ k0). Example: q_len 100,
  // k_len 300 (shift 200), key tile 256..299: queries from 56 on, so jt0 = 1 and the query
  // tiles start at 32, 64, 96: nq = 4 − 1 = 3. q_len 0 gives nq = 0: no items, dk = dv = 0.
  const int jt0 = max(k0 - shift, 0) / kBq, nq = (q_len + kBq - 1) / kBq - jt0;
  const int items = group * nq;
  auto issue = [&](int i) {
    const int h = hk * group + i / nq, j0 = (jt0 + i % nq) * kBq, buf = i & 1;
    const int64_t q_off = (int64_t(q_start) * H + h) * kD;
    detail::load_tile_async<kBq, kD, kDkvThreads>(Qs + buf * kBq * kS, q + q_off, q_ld, j0, q_len);
    detail::load_tile_async<kBq, kD, kDkvThreads>(dOs + buf * kBq * kS, dout + q_off, q_ld, j0,
                                                  q_len);
    // lse and delta rows ride the same cp.async group (a plain load here would stall this
    // warp for a memory round trip at the start of every item); rows past the end read 0.
    for (int t = threadIdx.x; t < kBq; t += kDkvThreads) {
      const bool valid = j0 + t < q_len;
      const int64_t at = valid ? int64_t(h) * Tq + q_start + j0 + t : 0;
      detail::cp_async4(lse_s + buf * kBq + t, lse + at, valid);
      detail::cp_async4(delta_s + buf * kBq + t, delta + at, valid);
    }
  };
  detail::load_tile_async<kBk, kD, kDkvThreads>(Ks, k + kv_off, kv_ld, k0, k_len);
  detail::load_tile_async<kBk, kD, kDkvThreads>(Vs, v + kv_off, kv_ld, k0, k_len);
  if (items > 0) issue(0);
  detail::cp_async_commit();
  const int kj[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // local key index of rows
  float dk_acc[kD / 8][4] = {}, dv_acc[kD / 8][4] = {};
  detail::cp_async_wait_all();
  __syncthreads();
  // This warp's 16 K and V rows as A fragments: held in registers across all items where they
  // fit (D = 64: 32 registers), else re-read from smem per k-step (D = 128: the accumulators
  // take 128 registers).
  constexpr bool kKvInRegs = kD <= 64;
  uint32_t kf[kKvInRegs ? kD / 16 : 1][4], vf[kKvInRegs ? kD / 16 : 1][4];
  if constexpr (kKvInRegs) {
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      detail::ldmatrix_x4(kf[kk], detail::frag_a(Ks, kS, warp * 16, kk * 16, lane));
      detail::ldmatrix_x4(vf[kk], detail::frag_a(Vs, kS, warp * 16, kk * 16, lane));
    }
  }

  for (int i = 0; i < items; ++i) {
    if (i + 1 < items) {
      issue(i + 1);
      detail::cp_async_commit();
    }
    const int buf = i & 1, j0 = (jt0 + i % nq) * kBq;
    const bf16* Qb = Qs + buf * kBq * kS;    // (kBq, kS)
    const bf16* dOb = dOs + buf * kBq * kS;  // (kBq, kS)
    const float* lse_b = lse_s + buf * kBq;
    const float* delta_b = delta_s + buf * kBq;
    float st[kBq / 8][4] = {}, dpt[kBq / 8][4] = {};  // (16 keys, kBq queries)
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      uint32_t ka[4], va[4];
      if constexpr (kKvInRegs) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          ka[j] = kf[kk][j];
          va[j] = vf[kk][j];
        }
      } else {
        detail::ldmatrix_x4(ka, detail::frag_a(Ks, kS, warp * 16, kk * 16, lane));
        detail::ldmatrix_x4(va, detail::frag_a(Vs, kS, warp * 16, kk * 16, lane));
      }
#pragma unroll
      for (int np = 0; np < kBq / 16; ++np) {
        uint32_t b[4];
        detail::ldmatrix_x4(b, detail::frag_b_nk(Qb, kS, np * 16, kk * 16, lane));
        detail::mma_bf16(st[2 * np], ka, b[0], b[1]);
        detail::mma_bf16(st[2 * np + 1], ka, b[2], b[3]);
        detail::ldmatrix_x4(b, detail::frag_b_nk(dOb, kS, np * 16, kk * 16, lane));
        detail::mma_bf16(dpt[2 * np], va, b[0], b[1]);
        detail::mma_bf16(dpt[2 * np + 1], va, b[2], b[3]);
      }
    }
    // Masking is needed where a query row of the tile may precede a key row (j0 + shift below
    // the tile's last key), or the query tile runs past q_len; a key tile past k_len implies the
    // first (j0 + shift < q_len + shift = k_len).
    const bool edge = j0 + shift < k0 + kBk || j0 + kBq > q_len;
#pragma unroll
    for (int n = 0; n < kBq / 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        int r = e >> 1, qcol = n * 8 + 2 * c + (e & 1), query = j0 + qcol;
        float p = detail::fast_exp2(fmaf(st[n][e], scale_log2, -lse_b[qcol] * detail::kLog2e));
        if (edge && (kj[r] > query + shift || query >= q_len || kj[r] >= k_len)) p = 0.f;
        st[n][e] = p;                                 // Pᵀ
        dpt[n][e] = p * (dpt[n][e] - delta_b[qcol]);  // dSᵀ
      }
    }
#pragma unroll
    for (int kk = 0; kk < kBq / 16; ++kk) {
      uint32_t pa[4] = {detail::pack_bf16(st[2 * kk][0], st[2 * kk][1]),
                        detail::pack_bf16(st[2 * kk][2], st[2 * kk][3]),
                        detail::pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                        detail::pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3])};
      uint32_t sa[4] = {detail::pack_bf16(dpt[2 * kk][0], dpt[2 * kk][1]),
                        detail::pack_bf16(dpt[2 * kk][2], dpt[2 * kk][3]),
                        detail::pack_bf16(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                        detail::pack_bf16(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
      for (int dp2 = 0; dp2 < kD / 16; ++dp2) {
        uint32_t b[4];
        detail::ldmatrix_x4_trans(b, detail::frag_b_kn(dOb, kS, dp2 * 16, kk * 16, lane));
        detail::mma_bf16(dv_acc[2 * dp2], pa, b[0], b[1]);
        detail::mma_bf16(dv_acc[2 * dp2 + 1], pa, b[2], b[3]);
        detail::ldmatrix_x4_trans(b, detail::frag_b_kn(Qb, kS, dp2 * 16, kk * 16, lane));
        detail::mma_bf16(dk_acc[2 * dp2], sa, b[0], b[1]);
        detail::mma_bf16(dk_acc[2 * dp2 + 1], sa, b[2], b[3]);
      }
    }
    detail::cp_async_wait_all();
    __syncthreads();
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (kj[r] >= k_len) continue;
    int64_t row = ((int64_t(k_start) + kj[r]) * Hkv + hk) * kD;
#pragma unroll
    for (int n = 0; n < kD / 8; ++n) {
      *reinterpret_cast<__nv_bfloat162*>(dk + row + n * 8 + 2 * c) =
          __floats2bfloat162_rn(dk_acc[n][2 * r] * scale, dk_acc[n][2 * r + 1] * scale);
      *reinterpret_cast<__nv_bfloat162*>(dv + row + n * 8 + 2 * c) =
          __floats2bfloat162_rn(dv_acc[n][2 * r], dv_acc[n][2 * r + 1]);
    }
  }
}

template <int kD>
void launch_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                const core::Tensor& v, const core::Tensor& lse, const core::Tensor& delta,
                const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& dq,
                core::Tensor& dk, core::Tensor& dv, cudaStream_t stream) {
  int Tq = int(q.size(0)), Tk = int(k.size(0)), H = int(q.size(1)), Hkv = int(k.size(1));
  int B = int(cu_q.numel() - 1);
  float scale = float(1.0 / std::sqrt(double(kD)));
  constexpr int dq_smem = dq_smem_bytes<kD>(), dkv_smem = dkv_smem_bytes<kD>();
  HYD_CUDA_CHECK(cudaFuncSetAttribute(attention_dq_kernel<kD>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, dq_smem));
  HYD_CUDA_CHECK(cudaFuncSetAttribute(attention_dkv_kernel<kD>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, dkv_smem));
  if (Tq > 0) {
    attention_dq_kernel<kD><<<dim3((Tq + kBr - 1) / kBr + B, H), kDqThreads, dq_smem, stream>>>(
        detail::ptr<bf16>(dout), detail::ptr<bf16>(q), detail::ptr<bf16>(k), detail::ptr<bf16>(v),
        detail::ptr<float>(lse), detail::ptr<float>(delta), detail::ptr<int32_t>(cu_q),
        detail::ptr<int32_t>(cu_k), B, Tq, H, Hkv, scale, detail::ptr<bf16>(dq));
    HYD_CUDA_LAUNCH_CHECK();
  }
  // Over the key tiles: with Tq = 0 every block has no items and writes dk = dv = 0.
  attention_dkv_kernel<kD><<<dim3((Tk + kBk - 1) / kBk + B, Hkv), kDkvThreads, dkv_smem, stream>>>(
      detail::ptr<bf16>(dout), detail::ptr<bf16>(q), detail::ptr<bf16>(k), detail::ptr<bf16>(v),
      detail::ptr<float>(lse), detail::ptr<float>(delta), detail::ptr<int32_t>(cu_q),
      detail::ptr<int32_t>(cu_k), B, Tq, H, Hkv, scale, detail::ptr<bf16>(dk),
      detail::ptr<bf16>(dv));
  HYD_CUDA_LAUNCH_CHECK();
}

void run_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
             const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
             const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& dq, core::Tensor& dk,
             core::Tensor& dv, cudaStream_t stream, const char* op) {
  using core::DType;
  detail::check_attention_args(q, k, v, cu_q, cu_k, op);
  int Tq = int(q.size(0)), H = int(q.size(1));
  detail::check_tensor(dout, DType::kBF16, q.shape(), op);
  detail::check_tensor(out, DType::kBF16, q.shape(), op);
  detail::check_tensor(lse, DType::kF32, {H, Tq}, op);
  detail::check_tensor(dq, DType::kBF16, q.shape(), op);
  detail::check_tensor(dk, DType::kBF16, k.shape(), op);
  detail::check_tensor(dv, DType::kBF16, v.shape(), op);
  if (k.size(0) == 0) return;
  core::Tensor delta = core::Tensor::empty({H, Tq}, DType::kF32, core::Device::kCuda);  // (H, Tq)
  if (Tq > 0) {
    int64_t rows = int64_t(Tq) * H;
    attention_delta_kernel<<<detail::blocks_for(rows * 32, 256, int64_t(1) << 30), 256, 0,
                             stream>>>(detail::ptr<bf16>(dout), detail::ptr<bf16>(out),
                                       detail::ptr<float>(delta), Tq, H, int(q.size(2)));
    HYD_CUDA_LAUNCH_CHECK();
  }
  if (q.size(2) == 64) {
    launch_bwd<64>(dout, q, k, v, lse, delta, cu_q, cu_k, dq, dk, dv, stream);
  } else {
    launch_bwd<128>(dout, q, k, v, lse, delta, cu_q, cu_k, dq, dk, dv, stream);
  }
}

}  // namespace

void attention_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                   const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                   const core::Tensor& cu_seqlens, core::Tensor& dq, core::Tensor& dk,
                   core::Tensor& dv, cudaStream_t stream) {
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "attention_bwd: q {} and k {} differ in tokens",
            q.describe(), k.describe());
  run_bwd(dout, q, k, v, out, lse, cu_seqlens, cu_seqlens, dq, dk, dv, stream, "attention_bwd");
}

void attention_segments_bwd(const core::Tensor& dout, const core::Tensor& q, const core::Tensor& k,
                            const core::Tensor& v, const core::Tensor& out, const core::Tensor& lse,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& dq, core::Tensor& dk, core::Tensor& dv,
                            cudaStream_t stream) {
  run_bwd(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, dq, dk, dv, stream,
          "attention_segments_bwd");
}

}  // namespace hydraulis::cuda
