// Times every hydraulis::cuda op on LLaMA-7B shapes (16,384-token micro-batch) with CUDA events
// (3 warm-ups, median of --reps) and writes JSON: per op ms, FLOP and byte counts, TFLOP/s and
// GB/s. Correctness is the job of tests/kernels_cuda (run in the same device call by run.sh);
// here every output is checked finite before timing. Competitor: torch_kernels.py.
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/file.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#ifdef HYD_WITH_CUDNN
#include "kernels/cuda/attention_cudnn.h"
#endif
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/rms_norm.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/swiglu.h"

namespace hyd = hydraulis;
using hyd::core::DType;
using hyd::core::Tensor;

namespace {

constexpr int kT = 16384, kC = 4096, kH = 32, kD = 128, kF = 11008, kV = 32000;
cudaStream_t g_stream = nullptr;

Tensor dev_empty(const hyd::core::Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, hyd::core::Device::kCuda);
}

// Fills a float tensor with a repeating 1 Mi-element pseudo-random pattern in [lo, hi) (never
// zeros: zeros time faster than real data).
void fill_random(Tensor& t, float lo, float hi, uint64_t seed) {
  const int64_t chunk = int64_t(1) << 20;
  int64_t n = t.numel();
  Tensor pattern = Tensor::empty({std::min(n, chunk)}, DType::kF32);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < pattern.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    pattern.data<float>()[i] = lo + (hi - lo) * float((s >> 40) & 0xffffff) / float(1 << 24);
  }
  Tensor staged = hyd::cuda::to_device_as(pattern, t.dtype(), g_stream);
  size_t elem = hyd::core::dtype_size(t.dtype());
  for (int64_t off = 0; off < n; off += chunk) {
    int64_t len = std::min(chunk, n - off);
    HYD_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(t.raw_data()) + off * elem, staged.raw_data(),
                                   size_t(len) * elem, cudaMemcpyDeviceToDevice, g_stream));
  }
}

Tensor random_dev(const hyd::core::Shape& shape, DType dtype, float lo, float hi, uint64_t seed) {
  Tensor t = dev_empty(shape, dtype);
  fill_random(t, lo, hi, seed);
  return t;
}

void expect_finite(const Tensor& t, const char* what) {
  Tensor h = hyd::cuda::to_host_f32(t.narrow_rows(0, std::min<int64_t>(t.size(0), 64)), g_stream);
  for (int64_t i = 0; i < h.numel(); ++i) {
    HYD_CHECK(std::isfinite(h.data<float>()[i]), "{}: element {} is {}", what, i, h.data<float>()[i]);
  }
}

struct Result {
  std::string op, shape;
  double ms, flop, bytes;
};
std::vector<Result> g_results;

double time_ms(const std::function<void()>& fn, int reps) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t a, b;
  HYD_CUDA_CHECK(cudaEventCreate(&a));
  HYD_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    HYD_CUDA_CHECK(cudaEventRecord(a, g_stream));
    fn();
    HYD_CUDA_CHECK(cudaEventRecord(b, g_stream));
    HYD_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    HYD_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    times.push_back(ms);
  }
  HYD_CUDA_CHECK(cudaEventDestroy(a));
  HYD_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void record(const std::string& op, const std::string& shape, double flop, double bytes,
            const std::function<void()>& fn, int reps) {
  double ms = time_ms(fn, reps);
  g_results.push_back({op, shape, ms, flop, bytes});
  std::printf("%-28s %-34s %9.3f ms %8.1f TFLOP/s %8.1f GB/s\n", op.c_str(), shape.c_str(), ms,
              flop / ms / 1e9, bytes / ms / 1e6);
  std::fflush(stdout);
}

void bench_matmul(int reps) {
  struct Case { const char* name; int K, M; };
  for (Case c : {Case{"qkv", kC, 3 * kC}, Case{"gate_up", kC, 2 * kF}, Case{"down", kF, kC},
                 Case{"lm_head", kC, kV}}) {
    Tensor x = random_dev({kT, c.K}, DType::kBF16, -1, 1, 1), w = random_dev({c.M, c.K}, DType::kBF16, -0.05f, 0.05f, 2);
    Tensor y = dev_empty({kT, c.M}, DType::kBF16), dy = random_dev({kT, c.M}, DType::kBF16, -1, 1, 3);
    Tensor dx = dev_empty({kT, c.K}, DType::kBF16), dw = hyd::cuda::zeros({c.M, c.K}, DType::kF32, g_stream);
    double flop = 2.0 * kT * c.K * c.M;
    std::string shape = fmt::format("N={} K={} M={}", kT, c.K, c.M);
    hyd::cuda::matmul_fwd(x, w, y, g_stream);
    expect_finite(y, "matmul y");
    record(fmt::format("matmul_fwd.{}", c.name), shape, flop, 2.0 * (double(kT) * c.K + double(c.M) * c.K + double(kT) * c.M),
           [&] { hyd::cuda::matmul_fwd(x, w, y, g_stream); }, reps);
    record(fmt::format("matmul_bwd.{}", c.name), shape, 2 * flop, 0,
           [&] { hyd::cuda::matmul_bwd(dy, x, w, dx, dw, g_stream); }, reps);
  }
}

// ‖a − b‖₂ / ‖b‖₂ over two device tensors (f32 or bf16).
double rel_error(const Tensor& a, const Tensor& b) {
  Tensor ha = hyd::cuda::to_host_f32(a, g_stream), hb = hyd::cuda::to_host_f32(b, g_stream);
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < ha.numel(); ++i) {
    double x = ha.data<float>()[i], y = hb.data<float>()[i];
    diff += (x - y) * (x - y);
    norm += y * y;
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// Our flash-attention kernels and, when built with cuDNN and it loads, cuDNN's fused
// flash-attention engine (attention_*_cudnn.*) on the same inputs; the cuDNN results are checked
// against ours before timing. The cuDNN calls include their host read of cu_seqlens (B > 1).
void bench_attention(const std::vector<int32_t>& lengths, const std::string& name, int reps,
                     int H = kH, int Hkv = kH, int D = kD) {
  std::vector<int32_t> cu = {0};
  double flop_fwd = 0;  // causal: 2 GEMMs · 2 FLOP · H · D · L(L+1)/2 per sequence
  for (int32_t L : lengths) {
    cu.push_back(cu.back() + L);
    flop_fwd += 4.0 * H * D * double(L) * (L + 1) / 2;
  }
  Tensor cu_host = Tensor::empty({int64_t(cu.size())}, DType::kI32);
  std::memcpy(cu_host.raw_data(), cu.data(), cu.size() * sizeof(int32_t));
  Tensor cud = hyd::cuda::to_device(cu_host, g_stream);
  int T = cu.back();
  Tensor q = random_dev({T, H, D}, DType::kBF16, -2, 2, 4), k = random_dev({T, Hkv, D}, DType::kBF16, -2, 2, 5);
  Tensor v = random_dev({T, Hkv, D}, DType::kBF16, -1, 1, 6), dout = random_dev({T, H, D}, DType::kBF16, -1, 1, 7);
  Tensor out = dev_empty({T, H, D}, DType::kBF16), lse = dev_empty({H, T}, DType::kF32);
  Tensor dq = dev_empty({T, H, D}, DType::kBF16);
  Tensor dk = dev_empty({T, Hkv, D}, DType::kBF16), dv = dev_empty({T, Hkv, D}, DType::kBF16);
  hyd::cuda::attention_fwd(q, k, v, cud, out, lse, g_stream);
  expect_finite(out, "attention out");
  std::string shape = H == Hkv ? fmt::format("T={} B={} H={} D={}", T, lengths.size(), H, D)
                               : fmt::format("T={} B={} H={} Hkv={} D={}", T, lengths.size(), H, Hkv, D);
  record("attention_fwd." + name, shape, flop_fwd, 0,
         [&] { hyd::cuda::attention_fwd(q, k, v, cud, out, lse, g_stream); }, reps);
  hyd::cuda::attention_bwd(dout, q, k, v, out, lse, cud, dq, dk, dv, g_stream);
  expect_finite(dq, "attention dq");
  expect_finite(dk, "attention dk");
  record("attention_bwd." + name, shape, 2.5 * flop_fwd, 0,  // 5 GEMMs vs the forward's 2
         [&] { hyd::cuda::attention_bwd(dout, q, k, v, out, lse, cud, dq, dk, dv, g_stream); }, reps);
#ifdef HYD_WITH_CUDNN
  std::string why;
  if (!hyd::cuda::cudnn_attention_available(&why)) {
    std::printf("attention_*_cudnn.%s skipped: %s\n", name.c_str(), why.c_str());
    return;
  }
  Tensor out_c = dev_empty({T, H, D}, DType::kBF16), lse_c = dev_empty({H, T}, DType::kF32);
  Tensor dq_c = dev_empty({T, H, D}, DType::kBF16);
  Tensor dk_c = dev_empty({T, Hkv, D}, DType::kBF16), dv_c = dev_empty({T, Hkv, D}, DType::kBF16);
  hyd::cuda::cudnn_attention_fwd(q, k, v, cud, out_c, lse_c, g_stream);
  hyd::cuda::cudnn_attention_bwd(dout, q, k, v, out, lse, cud, dq_c, dk_c, dv_c, g_stream);
  const double errors[] = {rel_error(out_c, out), rel_error(lse_c, lse), rel_error(dq_c, dq),
                           rel_error(dk_c, dk), rel_error(dv_c, dv)};
  std::printf("attention cudnn vs ours (%s): relative error out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n",
              name.c_str(), errors[0], errors[1], errors[2], errors[3], errors[4]);
  for (double e : errors) HYD_CHECK(e < 2e-2, "attention {}: cuDNN and our kernels disagree ({})", name, e);
  record("attention_fwd_cudnn." + name, shape, flop_fwd, 0,
         [&] { hyd::cuda::cudnn_attention_fwd(q, k, v, cud, out_c, lse_c, g_stream); }, reps);
  record("attention_bwd_cudnn." + name, shape, 2.5 * flop_fwd, 0,
         [&] { hyd::cuda::cudnn_attention_bwd(dout, q, k, v, out, lse, cud, dq_c, dk_c, dv_c, g_stream); }, reps);
#endif
}

void bench_elementwise(int reps) {
  const double tc = double(kT) * kC;
  Tensor x = random_dev({kT, kC}, DType::kBF16, -2, 2, 8), w = random_dev({kC}, DType::kBF16, 0.5, 1.5, 9);
  Tensor y = dev_empty({kT, kC}, DType::kBF16), rstd = dev_empty({kT}, DType::kF32);
  Tensor dy = random_dev({kT, kC}, DType::kBF16, -1, 1, 10), dx = dev_empty({kT, kC}, DType::kBF16);
  Tensor dw = hyd::cuda::zeros({kC}, DType::kF32, g_stream);
  std::string tcs = fmt::format("T={} C={}", kT, kC);
  record("rms_norm_fwd", tcs, 0, 2 * tc * 2, [&] { hyd::cuda::rms_norm_fwd(x, w, 1e-5, y, rstd, g_stream); }, reps);
  expect_finite(y, "rms_norm y");
  record("rms_norm_bwd", tcs, 0, 3 * tc * 2, [&] { hyd::cuda::rms_norm_bwd(dy, x, w, rstd, dx, dw, g_stream); }, reps);

  Tensor cu_host = Tensor::empty({5}, DType::kI32);
  for (int i = 0; i < 5; ++i) cu_host.data<int32_t>()[i] = i * kT / 4;
  Tensor cud = hyd::cuda::to_device(cu_host, g_stream);
  Tensor qh = random_dev({kT, kH, kD}, DType::kBF16, -1, 1, 11), qo = dev_empty({kT, kH, kD}, DType::kBF16);
  record("rope_fwd", fmt::format("T={} H={} D={}", kT, kH, kD), 0, 2 * tc * 2,
         [&] { hyd::cuda::rope_fwd(qh, cud, 10000.0, qo, g_stream); }, reps);

  Tensor gu = random_dev({kT, 2 * kF}, DType::kBF16, -3, 3, 12), so = dev_empty({kT, kF}, DType::kBF16);
  Tensor sdo = random_dev({kT, kF}, DType::kBF16, -1, 1, 13), dgu = dev_empty({kT, 2 * kF}, DType::kBF16);
  const double tf = double(kT) * kF;
  std::string tfs = fmt::format("T={} F={}", kT, kF);
  record("swiglu_fwd", tfs, 0, 3 * tf * 2, [&] { hyd::cuda::swiglu_fwd(gu, so, g_stream); }, reps);
  record("swiglu_bwd", tfs, 0, 5 * tf * 2, [&] { hyd::cuda::swiglu_bwd(sdo, gu, dgu, g_stream); }, reps);

  Tensor ids_host = Tensor::empty({kT}, DType::kI32);
  for (int t = 0; t < kT; ++t) ids_host.data<int32_t>()[t] = int32_t((int64_t(t) * 7919) % kV);
  Tensor ids = hyd::cuda::to_device(ids_host, g_stream);
  Tensor table = random_dev({kV, kC}, DType::kBF16, -1, 1, 14), emb = dev_empty({kT, kC}, DType::kBF16);
  Tensor dtable = hyd::cuda::zeros({kV, kC}, DType::kF32, g_stream);
  std::string es = fmt::format("T={} V={} C={}", kT, kV, kC);
  record("embedding_fwd", es, 0, 2 * tc * 2, [&] { hyd::cuda::embedding_fwd(ids, table, emb, g_stream); }, reps);
  record("embedding_bwd", es, 0, tc * 2 + 2 * tc * 4, [&] { hyd::cuda::embedding_bwd(ids, dy, dtable, g_stream); }, reps);

  Tensor logits = random_dev({kT, kV}, DType::kBF16, -6, 6, 15);
  Tensor targets = ids;  // any ids in [0, V)
  Tensor losses = dev_empty({kT}, DType::kF32), lse = dev_empty({kT}, DType::kF32), loss = dev_empty({1}, DType::kF32);
  Tensor dlogits = dev_empty({kT, kV}, DType::kBF16);
  const double tv = double(kT) * kV;
  std::string cs = fmt::format("T={} V={}", kT, kV);
  record("cross_entropy_fwd", cs, 0, tv * 2, [&] {
    hyd::cuda::cross_entropy_fwd(logits, targets, -100, kT, losses, lse, loss, g_stream);
  }, reps);
  record("cross_entropy_fwd_bwd", cs, 0, 3 * tv * 2, [&] {
    hyd::cuda::cross_entropy_fwd(logits, targets, -100, kT, losses, lse, loss, g_stream);
    hyd::cuda::cross_entropy_bwd(logits, targets, lse, -100, kT, dlogits, g_stream);
  }, reps);
  expect_finite(dlogits, "dlogits");
  record("cross_entropy_fused", cs, 0, 2 * tv * 2, [&] {  // one pass: read once, write once
    hyd::cuda::cross_entropy_fwd_bwd(logits, targets, -100, kT, losses, lse, loss, dlogits,
                                     g_stream);
  }, reps);
  expect_finite(dlogits, "fused dlogits");

  const int64_t n = int64_t(1) << 27;  // 134M parameters
  Tensor p = random_dev({n}, DType::kF32, -1, 1, 16), g = random_dev({n}, DType::kF32, -0.01f, 0.01f, 17);  // f32 as the trainer's
  Tensor m = hyd::cuda::zeros({n}, DType::kF32, g_stream), vv = hyd::cuda::zeros({n}, DType::kF32, g_stream);
  Tensor pb = dev_empty({n}, DType::kBF16);
  hyd::cuda::AdamWConfig config;
  int64_t step = 0;
  record("adamw_step", fmt::format("n={}", n), 0, double(n) * (4 * 3 * 2 + 4 + 2), [&] {
    hyd::cuda::adamw_step(p, g, m, vv, config, ++step, 1.0, pb, g_stream);
  }, reps);
  Tensor norm = dev_empty({1}, DType::kF32);
  std::vector<Tensor> grads = {g};
  record("grad_norm_sq", fmt::format("n={}", n), 0, double(n) * 4,
         [&] { hyd::cuda::grad_norm_sq(grads, norm, g_stream); }, reps);
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "kernels_bench.json", git = "unknown", only;
  int reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--out") out_path = argv[i + 1];
    else if (key == "--git") git = argv[i + 1];
    else if (key == "--reps") reps = std::atoi(argv[i + 1]);
    else if (key == "--only") only = argv[i + 1];
  }
  if (!hyd::cuda::device_available()) {
    std::fprintf(stderr, "kernels_bench: no CUDA device\n");
    return 1;
  }
  hyd::cuda::install_allocator();
  HYD_CUDA_CHECK(cudaStreamCreate(&g_stream));
  std::string device = hyd::cuda::device_description();
  std::printf("device: %s\n", device.c_str());
  if (only.empty() || only == "matmul") bench_matmul(reps);
  if (only.empty() || only == "attention") {
    bench_attention({4096, 4096, 4096, 4096}, "fixed4096", reps);
    bench_attention({8192, 3000, 2000, 1200, 800, 500, 300, 200, 100, 92}, "longtail", reps);
    bench_attention({4096, 4096, 4096, 4096}, "gqa64_fixed4096", reps, kH, 4, 64);  // 32 : 4 heads, D = 64
  }
  if (only.empty() || only == "elementwise") bench_elementwise(reps);

  std::string json = fmt::format("{{\"device\": \"{}\", \"git\": \"{}\", \"reps\": {}, \"results\": [", device, git, reps);
  for (size_t i = 0; i < g_results.size(); ++i) {
    const Result& r = g_results[i];
    json += fmt::format("{}\n  {{\"op\": \"{}\", \"shape\": \"{}\", \"ms\": {:.5f}, \"flop\": {:.6g}, \"bytes\": {:.6g}}}",
                        i ? "," : "", r.op, r.shape, r.ms, r.flop, r.bytes);
  }
  json += "\n]}\n";
  std::FILE* f = std::fopen(out_path.c_str(), "w");
  HYD_CHECK(f != nullptr, "cannot write {}", out_path);
  std::fputs(json.c_str(), f);
  std::fclose(f);
  std::printf("peak device memory in use by tensors: %.2f GiB\n",
              double(hyd::cuda::install_allocator().peak_bytes_in_use()) / (1 << 30));
  return 0;
}
