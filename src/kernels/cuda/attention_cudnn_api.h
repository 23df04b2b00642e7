// Internal to the cuDNN attention files (attention_cudnn.cpp, attention_cudnn_knobs.cpp): the
// run-time load of libcudnn.so.9 (dlopen: binaries run without it), status text, and an owning
// wrapper of backend descriptors. Not part of the kernels' interface.
#pragma once

#include <cudnn.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <string>

#include "core/check.h"

namespace hydraulis::cuda::cudnn_backend {

// ---- libcudnn, loaded once -------------------------------------------------------------------

struct CudnnApi {
  bool loaded = false;
  std::string error;  // why not loaded
  size_t version = 0;
  size_t (*get_version)() = nullptr;
  cudnnStatus_t (*create)(cudnnHandle_t*) = nullptr;
  cudnnStatus_t (*set_stream)(cudnnHandle_t, cudaStream_t) = nullptr;
  const char* (*error_string)(cudnnStatus_t) = nullptr;
  void (*last_error_string)(char*, size_t) = nullptr;
  cudnnStatus_t (*create_descriptor)(cudnnBackendDescriptorType_t, cudnnBackendDescriptor_t*) =
      nullptr;
  cudnnStatus_t (*destroy_descriptor)(cudnnBackendDescriptor_t) = nullptr;
  cudnnStatus_t (*set_attribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                 cudnnBackendAttributeType_t, int64_t, const void*) = nullptr;
  cudnnStatus_t (*get_attribute)(cudnnBackendDescriptor_t, cudnnBackendAttributeName_t,
                                 cudnnBackendAttributeType_t, int64_t, int64_t*, void*) = nullptr;
  cudnnStatus_t (*finalize)(cudnnBackendDescriptor_t) = nullptr;
  cudnnStatus_t (*execute)(cudnnHandle_t, cudnnBackendDescriptor_t,
                           cudnnBackendDescriptor_t) = nullptr;
};

template <typename F>
inline bool resolve(void* lib, const char* name, F& fn, std::string& error) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (fn == nullptr) error = fmt::format("libcudnn.so.9 has no symbol {}", name);
  return fn != nullptr;
}

inline const CudnnApi& api() {
  static const CudnnApi instance = [] {
    CudnnApi a;
    void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);  // never closed
    if (lib == nullptr) {
      a.error = fmt::format("cannot load libcudnn.so.9 ({}); put cuDNN 9's lib directory on "
                            "LD_LIBRARY_PATH", dlerror());
      return a;
    }
    std::string& e = a.error;
    a.loaded = resolve(lib, "cudnnGetVersion", a.get_version, e) &&
               resolve(lib, "cudnnCreate", a.create, e) &&
               resolve(lib, "cudnnSetStream", a.set_stream, e) &&
               resolve(lib, "cudnnGetErrorString", a.error_string, e) &&
               resolve(lib, "cudnnGetLastErrorString", a.last_error_string, e) &&
               resolve(lib, "cudnnBackendCreateDescriptor", a.create_descriptor, e) &&
               resolve(lib, "cudnnBackendDestroyDescriptor", a.destroy_descriptor, e) &&
               resolve(lib, "cudnnBackendSetAttribute", a.set_attribute, e) &&
               resolve(lib, "cudnnBackendGetAttribute", a.get_attribute, e) &&
               resolve(lib, "cudnnBackendFinalize", a.finalize, e) &&
               resolve(lib, "cudnnBackendExecute", a.execute, e);
    if (a.loaded) a.version = a.get_version();
    return a;
  }();
  return instance;
}

inline std::string last_error() {
  char message[2048] = {};
  api().last_error_string(message, sizeof(message));
  return message[0] != 0 ? message : "(no message)";
}

inline std::string status_text(cudnnStatus_t status) {
  return fmt::format("{} ({}): {}", api().error_string(status), int(status), last_error());
}

#define HYD_CUDNN_CHECK(stmt)                                                        \
  do {                                                                               \
    cudnnStatus_t hyd_st_ = (stmt);                                                  \
    HYD_CHECK(hyd_st_ == CUDNN_STATUS_SUCCESS, "cuDNN call `{}` failed: {}", #stmt,  \
              ::hydraulis::cuda::cudnn_backend::status_text(hyd_st_));               \
  } while (0)

// ---- descriptors -----------------------------------------------------------------------------

class Descriptor {
 public:
  explicit Descriptor(cudnnBackendDescriptorType_t type) {
    HYD_CUDNN_CHECK(api().create_descriptor(type, &desc_));
  }
  ~Descriptor() {
    if (desc_ != nullptr) api().destroy_descriptor(desc_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;

  cudnnBackendDescriptor_t get() const { return desc_; }
  void set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
           const void* values) {
    cudnnStatus_t st = api().set_attribute(desc_, name, type, count, values);
    HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "cudnnBackendSetAttribute(attribute {}) failed: {}",
              int(name), status_text(st));
  }
  void set(cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value) {
    set(name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value);
  }
  void set_int(cudnnBackendAttributeName_t name, int64_t value) {
    set(name, CUDNN_TYPE_INT64, 1, &value);
  }
  void set_dtype(cudnnBackendAttributeName_t name, cudnnDataType_t value) {
    set(name, CUDNN_TYPE_DATA_TYPE, 1, &value);
  }
  cudnnStatus_t try_finalize() { return api().finalize(desc_); }
  void finalize(const char* what) {
    cudnnStatus_t st = try_finalize();
    HYD_CHECK(st == CUDNN_STATUS_SUCCESS, "cudnnBackendFinalize({}) failed: {}", what,
              status_text(st));
  }

 private:
  cudnnBackendDescriptor_t desc_ = nullptr;
};


}  // namespace hydraulis::cuda::cudnn_backend
