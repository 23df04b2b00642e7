// Flash-attention forward over a packed varlen batch: a block of 4 warps owns 128 queries of one
// (sequence, head); each warp 32 query rows (two 16-row m-tiles, so every K/V fragment read from
// shared memory feeds two MMAs: half the ldmatrix traffic per FLOP of 16 rows per warp), its O
// accumulators and online-softmax state (row max m in the scaled log2 domain, partial sum l) in
// registers; Q fragments are re-read from smem per k-step (registers go to O and S). K/V arrive
// in 64-key tiles through cp.async into a double buffer (tile kt + 1 loads while tile kt is
// multiplied); V fragments by ldmatrix.trans, so no transposed copy. Per tile: S = Q·Kᵀ (mma),
// causal mask only on tiles that reach an m-tile's diagonal or the sequence end, online softmax
// with the scale folded into one FFMA per score (p = 2^(s·scale·log2e − m)) and lazy rescaling
// (O and l are rescaled only when the row max grows by more than 2^8), O += P·V with P
// reused from the S accumulators as A fragments; a warp skips the key tiles wholly above its
// rows. Two blocks per SM. One kernel serves both ops: segment s has its queries at cu_q[s].. and
// its keys at cu_k[s].., and query i sees keys 0 .. i + shift, shift = k_len − q_len (plain
// attention: cu_q == cu_k, shift 0). Twin: cpu/attention.cpp (attention_fwd, _segments_fwd).
#include "kernels/cuda/attention.h"

#include <cmath>

#include "kernels/cuda/attention_tiles.cuh"

namespace hydraulis::cuda {

namespace {

using detail::bf16;
constexpr int kWarps = 4, kMT = 2;                // warps per block, 16-row m-tiles per warp
constexpr int kBr = kWarps * kMT * 16, kBc = 64;  // 128 queries × 64-key tiles
constexpr int kThreads = kWarps * 32;
constexpr float kRescaleLog2 = 8.f;  // lazy-rescale threshold: P entries stay ≤ 2^8

template <int kD>
constexpr int fwd_smem_bytes() {
  return (kBr + 4 * kBc) * (kD + 8) * int(sizeof(bf16));  // Q + 2 × (K, V)
}

template <int kD>
__global__ void __launch_bounds__(kThreads, 8 / kWarps)
    attention_fwd_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k,
                         const bf16* __restrict__ v, const int32_t* __restrict__ cu_q,
                         const int32_t* __restrict__ cu_k, int num_seqs, int Tq, int H, int Hkv,
                         float scale_log2, bf16* __restrict__ out, float* __restrict__ lse) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kS = kD + 8;                     // padded row stride (elements)
  bf16* Qs = reinterpret_cast<bf16*>(smem_raw);  // (kBr, kS)
  bf16* Ks = Qs + kBr * kS;                      // 2 × (kBc, kS)
  bf16* Vs = Ks + 2 * kBc * kS;                  // 2 × (kBc, kS)

  int seq, qt;
  if (!detail::find_tile<kBr>(cu_q, num_seqs, blockIdx.x, seq, qt)) return;
  const int h = blockIdx.y, hk = h / (H / Hkv);
  const int q_start = cu_q[seq], q_len = cu_q[seq + 1] - q_start, q0 = qt * kBr;
  const int k_start = cu_k[seq], k_len = cu_k[seq + 1] - k_start, shift = k_len - q_len;
  if (shift < 0) __trap();  // a segment with fewer keys than queries: invalid cu_seqlens_k
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c = lane & 3;
  const int64_t kv_off = (int64_t(k_start) * Hkv + hk) * kD, kv_ld = int64_t(Hkv) * kD;

  detail::load_tile_async<kBr, kD, kThreads>(Qs, q + (int64_t(q_start) * H + h) * kD,
                                             int64_t(H) * kD, q0, q_len);
  detail::load_tile_async<kBc, kD, kThreads>(Ks, k + kv_off, kv_ld, 0, k_len);
  detail::load_tile_async<kBc, kD, kThreads>(Vs, v + kv_off, kv_ld, 0, k_len);
  detail::cp_async_commit();
  // Key tiles: the block needs 0..last_kt; this warp (rows row_lo..row_lo+31) 0..warp_kt. Row i
  // sees keys up to i + shift < k_len.
  const int last_kt = (min(q0 + kBr, q_len) - 1 + shift) / kBc;
  const int row_lo = q0 + warp * kMT * 16;
  const int warp_kt = row_lo < q_len ? (min(row_lo + kMT * 16, q_len) - 1 + shift) / kBc : -1;

  float o[kMT][kD / 8][4] = {};
  float m[kMT][2], l[kMT][2];  // rows g and g + 8 of each m-tile
  int qi[kMT][2];              // their local query index
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      m[mt][r] = -INFINITY;
      l[mt][r] = 0.f;
      qi[mt][r] = row_lo + mt * 16 + g + 8 * r;
    }
  }
  detail::cp_async_wait_all();
  __syncthreads();

  for (int kt = 0; kt <= last_kt; ++kt) {
    if (kt < last_kt) {  // prefetch tile kt + 1 into the buffer consumed in iteration kt − 1
      const int nb = (kt + 1) & 1;
      detail::load_tile_async<kBc, kD, kThreads>(Ks + nb * kBc * kS, k + kv_off, kv_ld,
                                                 (kt + 1) * kBc, k_len);
      detail::load_tile_async<kBc, kD, kThreads>(Vs + nb * kBc * kS, v + kv_off, kv_ld,
                                                 (kt + 1) * kBc, k_len);
      detail::cp_async_commit();
    }
    if (kt <= warp_kt) {
      const bf16* Kb = Ks + (kt & 1) * kBc * kS;  // (kBc, kS)
      const bf16* Vb = Vs + (kt & 1) * kBc * kS;  // (kBc, kS)
      float s[kMT][kBc / 8][4] = {};              // (32, kBc) raw scores of this warp
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        uint32_t a[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt)
          detail::ldmatrix_x4(a[mt], detail::frag_a(Qs, kS, (warp * kMT + mt) * 16, kk * 16, lane));
#pragma unroll
        for (int np = 0; np < kBc / 16; ++np) {
          uint32_t b[4];
          detail::ldmatrix_x4(b, detail::frag_b_nk(Kb, kS, np * 16, kk * 16, lane));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            detail::mma_bf16(s[mt][2 * np], a[mt], b[0], b[1]);
            detail::mma_bf16(s[mt][2 * np + 1], a[mt], b[2], b[3]);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        const int mt_lo = row_lo + mt * 16;
        // Row mt_lo (the m-tile's first) has the lowest limit, mt_lo + shift.
        const bool masked = kt * kBc + kBc - 1 > mt_lo + shift || (kt + 1) * kBc > k_len;
        float mx[2] = {-INFINITY, -INFINITY};  // raw row max of this tile
#pragma unroll
        for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            if (masked) {
              int key = kt * kBc + n * 8 + 2 * c + (e & 1);
              if (key > qi[mt][e >> 1] + shift || key >= k_len) s[mt][n][e] = -INFINITY;
            }
            mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][n][e]);
          }
        }
        bool grow = false;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
          mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
          mx[r] *= scale_log2;
          grow |= mx[r] > m[mt][r] + kRescaleLog2;
        }
        // Lazy rescaling: the running max m moves (and O, l are rescaled) only when some row of
        // the warp saw a score more than 2^kRescaleLog2 above it; otherwise p ≤ 2^kRescaleLog2
        // stays well inside fp32/bf16 range and the final 1/l normalises it exactly the same.
        // m = −inf before tile 0 forces the first update; key 0 is visible to every row on
        // tile 0, so m is finite from then on.
        if (__any_sync(0xffffffffu, grow)) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const float m_new = fmaxf(m[mt][r], mx[r]);
            const float alpha = detail::fast_exp2(m[mt][r] - m_new);  // 0 on the first tile
            m[mt][r] = m_new;
            l[mt][r] *= alpha;
#pragma unroll
            for (int n = 0; n < kD / 8; ++n) {
              o[mt][n][2 * r] *= alpha;
              o[mt][n][2 * r + 1] *= alpha;
            }
          }
        }
        const float neg_m[2] = {-m[mt][0], -m[mt][1]};
#pragma unroll
        for (int n = 0; n < kBc / 8; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float p = detail::fast_exp2(fmaf(s[mt][n][e], scale_log2, neg_m[e >> 1]));
            s[mt][n][e] = p;
            l[mt][e >> 1] += p;
          }
        }
      }
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        uint32_t pa[kMT][4];
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          pa[mt][0] = detail::pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          pa[mt][1] = detail::pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          pa[mt][2] = detail::pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          pa[mt][3] = detail::pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kD / 16; ++dp) {
          uint32_t b[4];
          detail::ldmatrix_x4_trans(b, detail::frag_b_kn(Vb, kS, dp * 16, kk * 16, lane));
#pragma unroll
          for (int mt = 0; mt < kMT; ++mt) {
            detail::mma_bf16(o[mt][2 * dp], pa[mt], b[0], b[1]);
            detail::mma_bf16(o[mt][2 * dp + 1], pa[mt], b[2], b[3]);
          }
        }
      }
    }
    detail::cp_async_wait_all();  // tile kt + 1 landed, and every warp is done with tile kt
    __syncthreads();
  }
  if (warp_kt < 0) return;
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = l[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      if (qi[mt][r] >= q_len) continue;
      int64_t tok = q_start + qi[mt][r];
      float inv = 1.f / sum;
      bf16* orow = out + (tok * H + h) * kD;  // (kD)
#pragma unroll
      for (int n = 0; n < kD / 8; ++n) {
        *reinterpret_cast<__nv_bfloat162*>(orow + n * 8 + 2 * c) =
            __floats2bfloat162_rn(o[mt][n][2 * r] * inv, o[mt][n][2 * r + 1] * inv);
      }
      if (c == 0) lse[int64_t(h) * Tq + tok] = (m[mt][r] + log2f(sum)) / detail::kLog2e;
    }
  }
}

template <int kD>
void launch_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& out,
                core::Tensor& lse, cudaStream_t stream) {
  int Tq = int(q.size(0)), H = int(q.size(1)), Hkv = int(k.size(1)), B = int(cu_q.numel() - 1);
  constexpr int smem = fwd_smem_bytes<kD>();
  HYD_CUDA_CHECK(cudaFuncSetAttribute(attention_fwd_kernel<kD>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  dim3 grid((Tq + kBr - 1) / kBr + B, H);
  float scale_log2 = float(1.0 / std::sqrt(double(kD))) * detail::kLog2e;
  attention_fwd_kernel<kD><<<grid, kThreads, smem, stream>>>(
      detail::ptr<bf16>(q), detail::ptr<bf16>(k), detail::ptr<bf16>(v),
      detail::ptr<int32_t>(cu_q), detail::ptr<int32_t>(cu_k), B, Tq, H, Hkv, scale_log2,
      detail::ptr<bf16>(out), detail::ptr<float>(lse));
  HYD_CUDA_LAUNCH_CHECK();
}

void run_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
             const core::Tensor& cu_q, const core::Tensor& cu_k, core::Tensor& out,
             core::Tensor& lse, cudaStream_t stream, const char* op) {
  detail::check_attention_args(q, k, v, cu_q, cu_k, op);
  detail::check_tensor(out, core::DType::kBF16, q.shape(), op);
  detail::check_tensor(lse, core::DType::kF32, {q.size(1), q.size(0)}, op);
  if (q.size(0) == 0) return;
  if (q.size(2) == 64) {
    launch_fwd<64>(q, k, v, cu_q, cu_k, out, lse, stream);
  } else {
    launch_fwd<128>(q, k, v, cu_q, cu_k, out, lse, stream);
  }
}

}  // namespace

namespace detail {
// q (Tq, H, D), k and v (Tk, Hkv, D); cu_q and cu_k (B + 1) on the device. Per-segment
// k_len ≥ q_len is checked by the kernels (a trap): the offsets live on the device.
void check_attention_args(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                          const core::Tensor& cu_q, const core::Tensor& cu_k, const char* op) {
  using core::DType;
  HYD_CHECK(q.dim() == 3 && k.dim() == 3,
            "{}: q (Tq, H, D) and k (Tk, Hkv, D) expected, got {} and {}", op, q.describe(),
            k.describe());
  int64_t Tk = k.size(0), H = q.size(1), Hkv = k.size(1), D = q.size(2);
  check_tensor(q, DType::kBF16, {}, op);
  check_tensor(k, DType::kBF16, {Tk, Hkv, D}, op);
  check_tensor(v, DType::kBF16, {Tk, Hkv, D}, op);
  check_tensor(cu_q, DType::kI32, {}, op);
  check_tensor(cu_k, DType::kI32, {}, op);
  HYD_CHECK(cu_q.dim() == 1 && cu_q.numel() >= 2, "{}: cu_seqlens must be (B + 1), is {}", op,
            cu_q.describe());
  HYD_CHECK(cu_k.dim() == 1 && cu_k.numel() == cu_q.numel(),
            "{}: cu_seqlens_k {} must have the size of cu_seqlens_q {}", op, cu_k.describe(),
            cu_q.describe());
  HYD_CHECK(Tk >= q.size(0), "{}: {} keys for {} queries (each segment needs k_len >= q_len)",
            op, Tk, q.size(0));
  HYD_CHECK(Hkv > 0 && H % Hkv == 0, "{}: kv heads {} must divide query heads {}", op, Hkv, H);
  HYD_CHECK(D == 64 || D == 128, "{}: head dim {} unsupported (64 or 128)", op, D);
  HYD_CHECK(aligned16(q.raw_data()) && aligned16(k.raw_data()) && aligned16(v.raw_data()),
            "{}: q, k, v must be 16-byte aligned", op);
}
}  // namespace detail

void attention_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                   const core::Tensor& cu_seqlens, core::Tensor& out, core::Tensor& lse,
                   cudaStream_t stream) {
  HYD_CHECK(k.dim() == 3 && k.size(0) == q.size(0), "attention_fwd: q {} and k {} differ in tokens",
            q.describe(), k.describe());
  run_fwd(q, k, v, cu_seqlens, cu_seqlens, out, lse, stream, "attention_fwd");
}

void attention_segments_fwd(const core::Tensor& q, const core::Tensor& k, const core::Tensor& v,
                            const core::Tensor& cu_seqlens_q, const core::Tensor& cu_seqlens_k,
                            core::Tensor& out, core::Tensor& lse, cudaStream_t stream) {
  run_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k, out, lse, stream, "attention_segments_fwd");
}

}  // namespace hydraulis::cuda
