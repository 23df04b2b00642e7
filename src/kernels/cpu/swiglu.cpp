// SwiGLU forward/backward, elementwise per token row.
#include "kernels/cpu/swiglu.h"

#include <cmath>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

void check_gate_up(const core::Tensor& gate_up, std::string_view op) {
  HYD_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0, "{}: gate_up must be (T, 2F), is {}",
            op, gate_up.describe());
}

}  // namespace

void swiglu_fwd(const core::Tensor& gate_up, core::Tensor& out) {
  check_gate_up(gate_up, "swiglu_fwd");
  int64_t num_tokens = gate_up.size(0), ffn = gate_up.size(1) / 2;
  check_shape(out, {num_tokens, ffn}, "swiglu_fwd out");
  check_dtype(out, gate_up.dtype(), "swiglu_fwd out");
  dispatch_floating(gate_up.dtype(), "swiglu_fwd", [&]<typename T>(T) {
    const T* in = gate_up.data<T>();  // (T, 2F)
    T* o = out.data<T>();             // (T, F)
    parallel_for(num_tokens, 8, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* gate = in + t * 2 * ffn;
        const T* up = gate + ffn;
        for (int64_t f = 0; f < ffn; ++f) o[t * ffn + f] = gate[f] * sigmoid(gate[f]) * up[f];
      }
    });
  });
}

void swiglu_bwd(const core::Tensor& dout, const core::Tensor& gate_up, core::Tensor& dgate_up) {
  check_gate_up(gate_up, "swiglu_bwd");
  int64_t num_tokens = gate_up.size(0), ffn = gate_up.size(1) / 2;
  check_shape(dout, {num_tokens, ffn}, "swiglu_bwd dout");
  check_shape(dgate_up, gate_up.shape(), "swiglu_bwd dgate_up");
  check_dtype(dout, gate_up.dtype(), "swiglu_bwd dout");
  check_dtype(dgate_up, gate_up.dtype(), "swiglu_bwd dgate_up");
  dispatch_floating(gate_up.dtype(), "swiglu_bwd", [&]<typename T>(T) {
    const T* in = gate_up.data<T>();  // (T, 2F)
    const T* d = dout.data<T>();      // (T, F)
    T* din = dgate_up.data<T>();      // (T, 2F), may alias gate_up
    parallel_for(num_tokens, 8, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const T* gate = in + t * 2 * ffn;
        const T* up = gate + ffn;
        T* dgate = din + t * 2 * ffn;
        T* dup = dgate + ffn;
        for (int64_t f = 0; f < ffn; ++f) {
          T g = gate[f], u = up[f], s = sigmoid(g), grad = d[t * ffn + f];
          dgate[f] = grad * u * s * (T(1) + g * (T(1) - s));
          dup[f] = grad * g * s;
        }
      }
    });
  });
}

}  // namespace hydraulis::cpu
