// Power-cap probe: how the 700 W limit shapes GEMM throughput on this GPU, the measurements behind
// the performance notes of bench/train/README.md ("The step is power-bound"). Runs on raw
// cuBLASLt (the same bf16 GEMMs, fp32 accumulation, as kernels/cuda/matmul.cpp) so that it can
// set what our op layer does not expose: the SM-count target and the algorithm candidate.
//   fill:       gate_up forward sustained for windows of 100 GEMMs, operands all one constant
//               (few bits toggle) vs pseudo-random normal values (like real activations/weights);
//   sm_target:  the same GEMM, random operands, cuBLASLt told to plan for fewer SMs;
//   adamw:      an AdamW-shaped pass (4 f32 streams read, 3 f32 + 1 bf16 written) on a grid of
//               k blocks of 1024 threads, alone;
//   overlap:    both at once, GEMM on 132 − k SMs (high-priority stream), the pass on k blocks;
//   candidates: every GEMM of the 7b-4l training step, each cuBLASLt heuristic candidate timed
//               after the board is at its cap (3 interleaved rounds, median).
// Usage: power_probe --out FILE.json [--git HASH]. docs: bench/train/README.md.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

void check(int status, const char* what, int line) {
  if (status == 0) return;
  std::fprintf(stderr, "power_probe: %s failed with status %d (line %d)\n", what, status, line);
  std::exit(1);
}
#define PROBE_CHECK(x) check(int(x), #x, __LINE__)

constexpr size_t kWorkspace = size_t(32) << 20;
constexpr int kSms = 132;

// Normal-ish values (sum of four uniforms) scaled by `scale`, from a counter-based hash.
__global__ void fill_normal(__nv_bfloat16* x, int64_t n, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint64_t z = (uint64_t(i) + seed) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    float u = 0;
    for (int q = 0; q < 4; ++q) u += float((z >> (16 * q)) & 0xffff) / 65536.f;
    x[i] = __float2bfloat16_rn((u - 2.f) * 1.732f * scale);
  }
}

__global__ void fill_constant(__nv_bfloat16* x, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    x[i] = __float2bfloat16_rn(value);
  }
}

// The memory traffic of one AdamW step over n4 groups of 4 parameters (30 bytes per parameter).
__global__ void adamw_shaped(float* p, const float* g, float* m, float* v, __nv_bfloat16* copy,
                             int64_t n4) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < n4;
       j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = 4 * j;
    float4 gv = *reinterpret_cast<const float4*>(g + i), pv = *reinterpret_cast<float4*>(p + i);
    float4 mv = *reinterpret_cast<float4*>(m + i), vv = *reinterpret_cast<float4*>(v + i);
    float* gs = &gv.x;
    float* ps = &pv.x;
    float* ms = &mv.x;
    float* vs = &vv.x;
    alignas(8) __nv_bfloat16 b[4];
    for (int q = 0; q < 4; ++q) {
      ps[q] *= 0.9999f;
      ms[q] += 0.1f * (gs[q] - ms[q]);
      vs[q] = 0.999f * vs[q] + 0.001f * gs[q] * gs[q];
      ps[q] -= 1e-5f * ms[q] / (sqrtf(vs[q]) + 1e-8f);
      b[q] = __float2bfloat16_rn(ps[q]);
    }
    *reinterpret_cast<float4*>(p + i) = pv;
    *reinterpret_cast<float4*>(m + i) = mv;
    *reinterpret_cast<float4*>(v + i) = vv;
    *reinterpret_cast<uint2*>(copy + i) = *reinterpret_cast<uint2*>(b);
  }
}

// Column-major D (m, n) = beta·D + op(A)·op(B), bf16 operands, D bf16 or f32.
struct Gemm {
  const char* name;
  cublasOperation_t ta, tb;
  int64_t m, n, k;
  bool f32_out;
  float beta;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  std::vector<cublasLtMatmulAlgo_t> algos;

  void plan(cublasLtHandle_t h, int sm_target) {
    PROBE_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    PROBE_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    PROBE_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    if (sm_target > 0) {
      PROBE_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET,
                                                 &sm_target, sizeof(sm_target)));
    }
    const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
    PROBE_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16BF, an ? m : k, an ? k : m, an ? m : k));
    PROBE_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16BF, bn ? k : n, bn ? n : k, bn ? k : n));
    PROBE_CHECK(cublasLtMatrixLayoutCreate(&c, f32_out ? CUDA_R_32F : CUDA_R_16BF, m, n, m));
    cublasLtMatmulPreference_t pref = nullptr;
    PROBE_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = kWorkspace;
    PROBE_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                     &ws, sizeof(ws)));
    cublasLtMatmulHeuristicResult_t results[8]{};
    int found = 0;
    PROBE_CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, a, b, c, c, pref, 8, results, &found));
    PROBE_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    for (int i = 0; i < found; ++i) algos.push_back(results[i].algo);
    if (algos.empty()) check(1, name, __LINE__);
  }
  void destroy() {
    cublasLtMatrixLayoutDestroy(a);
    cublasLtMatrixLayoutDestroy(b);
    cublasLtMatrixLayoutDestroy(c);
    cublasLtMatmulDescDestroy(desc);
  }
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
};

struct Probe {
  cublasLtHandle_t handle = nullptr;
  void *A = nullptr, *B = nullptr, *D = nullptr, *workspace = nullptr;
  int64_t a_elems = 0, b_elems = 0;
  cudaStream_t gemm_stream = nullptr, side_stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr, side_start = nullptr, side_stop = nullptr;
  std::string json;

  void run(const Gemm& g, size_t algo, cudaStream_t s) {
    float one = 1.f;
    PROBE_CHECK(cublasLtMatmul(handle, g.desc, &one, A, g.a, B, g.b, &g.beta, D, g.c, D, g.c,
                               &g.algos[algo], workspace, kWorkspace, s));
  }
  // Mean device ms per GEMM over `count` back-to-back launches.
  float time_gemm(const Gemm& g, size_t algo, int count) {
    PROBE_CHECK(cudaEventRecord(start, gemm_stream));
    for (int i = 0; i < count; ++i) run(g, algo, gemm_stream);
    PROBE_CHECK(cudaEventRecord(stop, gemm_stream));
    PROBE_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    PROBE_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms / float(count);
  }
  void fill(bool random) {
    if (random) {
      fill_normal<<<1024, 256>>>(static_cast<__nv_bfloat16*>(A), a_elems, 1.f, 1);
      fill_normal<<<1024, 256>>>(static_cast<__nv_bfloat16*>(B), b_elems, 0.02f, 777);
    } else {
      fill_constant<<<1024, 256>>>(static_cast<__nv_bfloat16*>(A), a_elems, 1.f);
      fill_constant<<<1024, 256>>>(static_cast<__nv_bfloat16*>(B), b_elems, 0.02f);
    }
    PROBE_CHECK(cudaGetLastError());
    PROBE_CHECK(cudaDeviceSynchronize());
  }
  void add(const std::string& entry) {
    json += (json.empty() ? "\n  " : ",\n  ") + entry;
    std::printf("%s\n", entry.c_str());
    std::fflush(stdout);
  }
};

std::string fmt_list(const std::vector<double>& v, const char* f = "%.1f") {
  std::string s = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof(buf), f, v[i]);
    s += (i ? ", " : "") + std::string(buf);
  }
  return s + "]";
}

// gate_up forward of 7b at 16 384 positions, row-major y = x·Wᵀ as matmul.cpp computes it.
Gemm gate_up() { return {"fwd gate_up", CUBLAS_OP_T, CUBLAS_OP_N, 22016, 16384, 4096, false, 0.f}; }

void probe_fill(Probe& p) {
  for (bool random : {false, true}) {
    p.fill(random);
    Gemm g = gate_up();
    g.plan(p.handle, 0);
    std::vector<double> windows;
    for (int w = 0; w < 8; ++w) windows.push_back(g.flops() / p.time_gemm(g, 0, 100) / 1e9);
    p.add(std::string("{\"probe\": \"fill\", \"operands\": \"") + (random ? "random" : "constant") +
          "\", \"gemm\": \"" + g.name + "\", \"tflops_per_window_of_100\": " + fmt_list(windows) +
          "}");
    g.destroy();
  }
}

void probe_sm_target(Probe& p) {
  for (int sms : {kSms, 124, 116, 108, 100, kSms}) {
    Gemm g = gate_up();
    g.plan(p.handle, sms == kSms ? 0 : sms);
    std::vector<double> windows;
    for (int w = 0; w < 5; ++w) windows.push_back(g.flops() / p.time_gemm(g, 0, 60) / 1e9);
    p.add("{\"probe\": \"sm_target\", \"sms\": " + std::to_string(sms) +
          ", \"tflops_per_window_of_60\": " + fmt_list(windows) + "}");
    g.destroy();
  }
}

struct AdamBuffers {
  float *p = nullptr, *g = nullptr, *m = nullptr, *v = nullptr;
  __nv_bfloat16* copy = nullptr;
  int64_t n = 200'000'000;
  double bytes() const { return double(n) * 30; }
  void alloc() {
    for (float** q : {&p, &g, &m, &v}) {
      PROBE_CHECK(cudaMalloc(q, size_t(n) * 4));
      PROBE_CHECK(cudaMemset(*q, 0, size_t(n) * 4));
    }
    PROBE_CHECK(cudaMalloc(&copy, size_t(n) * 2));
  }
  void launch(int blocks, int threads, cudaStream_t s) const {
    adamw_shaped<<<blocks, threads, 0, s>>>(p, g, m, v, copy, n / 4);
  }
  void release() {
    for (float* q : {p, g, m, v}) cudaFree(q);
    cudaFree(copy);
  }
};

void probe_adamw_and_overlap(Probe& p) {
  AdamBuffers adam;
  adam.alloc();
  for (int blocks : {kSms * 8, 16, 24, 32}) {
    const int threads = blocks == kSms * 8 ? 256 : 1024;
    PROBE_CHECK(cudaEventRecord(p.side_start, p.side_stream));
    for (int i = 0; i < 10; ++i) adam.launch(blocks, threads, p.side_stream);
    PROBE_CHECK(cudaEventRecord(p.side_stop, p.side_stream));
    PROBE_CHECK(cudaEventSynchronize(p.side_stop));
    float ms = 0;
    PROBE_CHECK(cudaEventElapsedTime(&ms, p.side_start, p.side_stop));
    p.add("{\"probe\": \"adamw\", \"blocks\": " + std::to_string(blocks) + ", \"threads\": " +
          std::to_string(threads) + ", \"gb_per_s\": " + std::to_string(adam.bytes() * 10 / ms / 1e6) +
          "}");
  }
  for (int reserve : {16, 24, 32}) {
    Gemm g = gate_up();
    g.plan(p.handle, kSms - reserve);
    const int count = 500;
    PROBE_CHECK(cudaEventRecord(p.start, p.gemm_stream));
    for (int i = 0; i < count; ++i) p.run(g, 0, p.gemm_stream);
    PROBE_CHECK(cudaEventRecord(p.stop, p.gemm_stream));
    PROBE_CHECK(cudaEventRecord(p.side_start, p.side_stream));
    int passes = 0;
    while (cudaEventQuery(p.stop) == cudaErrorNotReady) {  // passes until the GEMMs are done
      adam.launch(reserve, 1024, p.side_stream);
      ++passes;
      PROBE_CHECK(cudaStreamSynchronize(p.side_stream));
    }
    PROBE_CHECK(cudaEventRecord(p.side_stop, p.side_stream));
    PROBE_CHECK(cudaDeviceSynchronize());
    float gemm_ms = 0, side_ms = 0;
    PROBE_CHECK(cudaEventElapsedTime(&gemm_ms, p.start, p.stop));
    PROBE_CHECK(cudaEventElapsedTime(&side_ms, p.side_start, p.side_stop));
    p.add("{\"probe\": \"overlap\", \"reserved_sms\": " + std::to_string(reserve) +
          ", \"gemm_tflops\": " + std::to_string(g.flops() * count / gemm_ms / 1e9) +
          ", \"adamw_gb_per_s\": " + std::to_string(adam.bytes() * passes / side_ms / 1e6) + "}");
    g.destroy();
  }
  adam.release();
}

void probe_candidates(Probe& p) {
  const std::vector<Gemm> step = {
      {"fwd qkv", CUBLAS_OP_T, CUBLAS_OP_N, 12288, 16384, 4096, false, 0.f},
      {"fwd o + residual", CUBLAS_OP_T, CUBLAS_OP_N, 4096, 16384, 4096, false, 1.f},
      {"fwd gate_up", CUBLAS_OP_T, CUBLAS_OP_N, 22016, 16384, 4096, false, 0.f},
      {"fwd down + residual", CUBLAS_OP_T, CUBLAS_OP_N, 4096, 16384, 11008, false, 1.f},
      {"fwd lm_head chunk", CUBLAS_OP_T, CUBLAS_OP_N, 50304, 4096, 4096, false, 0.f},
      {"dx qkv", CUBLAS_OP_N, CUBLAS_OP_N, 4096, 16384, 12288, false, 0.f},
      {"dx o", CUBLAS_OP_N, CUBLAS_OP_N, 4096, 16384, 4096, false, 0.f},
      {"dx gate_up", CUBLAS_OP_N, CUBLAS_OP_N, 4096, 16384, 22016, false, 0.f},
      {"dx down", CUBLAS_OP_N, CUBLAS_OP_N, 11008, 16384, 4096, false, 0.f},
      {"dx lm_head chunk", CUBLAS_OP_N, CUBLAS_OP_N, 4096, 4096, 50304, false, 0.f},
      {"dw qkv", CUBLAS_OP_N, CUBLAS_OP_T, 4096, 12288, 16384, true, 0.f},
      {"dw o", CUBLAS_OP_N, CUBLAS_OP_T, 4096, 4096, 16384, true, 0.f},
      {"dw gate_up", CUBLAS_OP_N, CUBLAS_OP_T, 4096, 22016, 16384, true, 0.f},
      {"dw down", CUBLAS_OP_N, CUBLAS_OP_T, 11008, 4096, 16384, true, 0.f},
      {"dw lm_head chunk (accumulate)", CUBLAS_OP_N, CUBLAS_OP_T, 4096, 50304, 4096, true, 1.f}};
  for (Gemm g : step) {
    g.plan(p.handle, 0);
    const int count = std::max(5, int(0.05 * 650e12 / g.flops()));  // ~50 ms per timing
    for (int i = 0; i < 6 * count; ++i) p.run(g, 0, p.gemm_stream);  // at the cap before timing
    std::vector<std::vector<double>> rounds(g.algos.size());
    for (int r = 0; r < 3; ++r) {
      for (size_t i = 0; i < g.algos.size(); ++i) rounds[i].push_back(p.time_gemm(g, i, count));
    }
    std::vector<double> tflops;
    for (auto& v : rounds) {
      std::sort(v.begin(), v.end());
      tflops.push_back(g.flops() / v[1] / 1e9);
    }
    char dims[96];
    std::snprintf(dims, sizeof(dims), "\"m\": %lld, \"n\": %lld, \"k\": %lld",
                  static_cast<long long>(g.m), static_cast<long long>(g.n),
                  static_cast<long long>(g.k));
    p.add(std::string("{\"probe\": \"candidates\", \"gemm\": \"") + g.name + "\", " + dims +
          ", \"tflops_by_candidate\": " + fmt_list(tflops, "%.0f") + "}");
    g.destroy();
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string out, git = "unknown";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    if (key == "--out") out = argv[i + 1];
    else if (key == "--git") git = argv[i + 1];
  }
  if (out.empty()) {
    std::fprintf(stderr, "usage: power_probe --out FILE.json [--git HASH]\n");
    return 2;
  }
  cudaDeviceProp prop{};
  PROBE_CHECK(cudaGetDeviceProperties(&prop, 0));
  if (prop.multiProcessorCount != kSms) {
    std::fprintf(stderr, "power_probe: written for %d SMs (H100/H200 SXM), this GPU has %d\n",
                 kSms, prop.multiProcessorCount);
    return 1;
  }
  Probe p;
  p.a_elems = 50304LL * 4096;   // the largest A / B / D of the step's GEMMs
  p.b_elems = 16384LL * 22016;
  const size_t d_bytes = size_t(16384) * 22016 * 2 > size_t(4096) * 50304 * 4
                             ? size_t(16384) * 22016 * 2 : size_t(4096) * 50304 * 4;
  PROBE_CHECK(cudaMalloc(&p.A, size_t(p.a_elems) * 2));
  PROBE_CHECK(cudaMalloc(&p.B, size_t(p.b_elems) * 2));
  PROBE_CHECK(cudaMalloc(&p.D, d_bytes));
  PROBE_CHECK(cudaMemset(p.D, 0, d_bytes));
  PROBE_CHECK(cudaMalloc(&p.workspace, kWorkspace));
  PROBE_CHECK(cublasLtCreate(&p.handle));
  int lowest = 0, highest = 0;
  PROBE_CHECK(cudaDeviceGetStreamPriorityRange(&lowest, &highest));
  PROBE_CHECK(cudaStreamCreateWithPriority(&p.gemm_stream, cudaStreamNonBlocking, highest));
  PROBE_CHECK(cudaStreamCreateWithPriority(&p.side_stream, cudaStreamNonBlocking, lowest));
  for (cudaEvent_t* e : {&p.start, &p.stop, &p.side_start, &p.side_stop}) {
    PROBE_CHECK(cudaEventCreate(e));
  }
  probe_fill(p);  // leaves random operands for the rest
  probe_sm_target(p);
  probe_adamw_and_overlap(p);
  probe_candidates(p);
  std::string name;  // JSON-escaped device name
  for (const char* ch = prop.name; *ch != '\0'; ++ch) {
    if (*ch == '"' || *ch == '\\') name += '\\';
    name += *ch;
  }
  const std::string doc = "{\"device\": \"" + name + "\", \"git\": \"" + git +
                          "\", \"probes\": [" + p.json + "\n]}\n";
  const std::string tmp = out + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr || std::fputs(doc.c_str(), f) < 0 || std::fclose(f) != 0 ||
      std::rename(tmp.c_str(), out.c_str()) != 0) {
    std::fprintf(stderr, "power_probe: cannot write %s\n", out.c_str());
    return 1;
  }
  return 0;
}
