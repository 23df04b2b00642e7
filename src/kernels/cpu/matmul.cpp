// matmul through OpenBLAS; row-major cblas calls, the transposes spelled out per product.
#include "kernels/cpu/matmul.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/tensor_checks.h"

namespace hydraulis::cpu {

namespace {

// C (m, n) = alpha · op(A) · op(B) + beta · C, row-major, ld* are row strides.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

// BLAS wants leading dimensions >= 1 even for empty operands.
int64_t ld(int64_t n) {
  return std::max<int64_t>(n, 1);
}

}  // namespace

void matmul_fwd(const core::Tensor& x, const core::Tensor& w, core::Tensor& y) {
  HYD_CHECK(x.dim() == 2 && w.dim() == 2, "matmul_fwd: x {} and w {} must be 2-d", x.describe(),
            w.describe());
  int64_t n = x.size(0), k = x.size(1), m = w.size(0);
  check_shape(w, {m, k}, "matmul_fwd w");
  check_shape(y, {n, m}, "matmul_fwd y");
  check_dtype(w, x.dtype(), "matmul_fwd w");
  check_dtype(y, x.dtype(), "matmul_fwd y");
  dispatch_floating(x.dtype(), "matmul_fwd", [&]<typename T>(T) {
    if (n == 0 || m == 0) return;
    if (k == 0) {
      std::fill_n(y.data<T>(), n * m, T(0));
      return;
    }
    gemm(CblasNoTrans, CblasTrans, n, m, k, T(1), x.data<T>(), ld(k), w.data<T>(), ld(k), T(0),
         y.data<T>(), ld(m));  // (N, M)
  });
}

void matmul_bwd(const core::Tensor& dy, const core::Tensor& x, const core::Tensor& w,
                core::Tensor& dx, core::Tensor& dw) {
  HYD_CHECK(x.dim() == 2 && w.dim() == 2, "matmul_bwd: x {} and w {} must be 2-d", x.describe(),
            w.describe());
  int64_t n = x.size(0), k = x.size(1), m = w.size(0);
  check_shape(w, {m, k}, "matmul_bwd w");
  check_shape(dy, {n, m}, "matmul_bwd dy");
  check_shape(dw, {m, k}, "matmul_bwd dw");
  check_dtype(w, x.dtype(), "matmul_bwd w");
  check_dtype(dy, x.dtype(), "matmul_bwd dy");
  check_dtype(dw, x.dtype(), "matmul_bwd dw");
  if (dx.defined()) {
    check_shape(dx, {n, k}, "matmul_bwd dx");
    check_dtype(dx, x.dtype(), "matmul_bwd dx");
  }
  dispatch_floating(x.dtype(), "matmul_bwd", [&]<typename T>(T) {
    if (k == 0) return;
    if (dx.defined() && n > 0) {
      if (m == 0) {
        std::fill_n(dx.data<T>(), n * k, T(0));
      } else {
        gemm(CblasNoTrans, CblasNoTrans, n, k, m, T(1), dy.data<T>(), ld(m), w.data<T>(), ld(k),
             T(0), dx.data<T>(), ld(k));  // (N, K)
      }
    }
    if (n > 0 && m > 0) {
      gemm(CblasTrans, CblasNoTrans, m, k, n, T(1), dy.data<T>(), ld(m), x.data<T>(), ld(k), T(1),
           dw.data<T>(), ld(k));  // (M, K) +=
    }
  });
}

}  // namespace hydraulis::cpu
