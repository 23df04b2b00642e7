// Checked calls for the CUDA backend: every CUDA runtime, cuBLAS(Lt) and cuDNN call goes through
// one of these macros, which abort through HYD_CHECK with the failing statement, the library's
// error string, file:line, rank and host. HYD_CUDA_LAUNCH_CHECK() follows every kernel launch.
// Used by every file under kernels/cuda/; exercised by tests/kernels_cuda/.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/check.h"

#define HYD_CUDA_CHECK(stmt)                                                               \
  do {                                                                                     \
    cudaError_t hyd_err_ = (stmt);                                                         \
    HYD_CHECK(hyd_err_ == cudaSuccess, "CUDA call `{}` failed: {} ({})", #stmt,            \
              cudaGetErrorString(hyd_err_), static_cast<int>(hyd_err_));                   \
  } while (0)

#define HYD_CUBLAS_CHECK(stmt)                                                             \
  do {                                                                                     \
    cublasStatus_t hyd_st_ = (stmt);                                                       \
    HYD_CHECK(hyd_st_ == CUBLAS_STATUS_SUCCESS, "cuBLAS call `{}` failed: {} ({})", #stmt, \
              cublasLtGetStatusString(hyd_st_), static_cast<int>(hyd_st_));                \
  } while (0)

// After every <<<...>>> launch: catches bad configurations (grid, shared memory) at the launch.
#define HYD_CUDA_LAUNCH_CHECK() HYD_CUDA_CHECK(cudaGetLastError())
