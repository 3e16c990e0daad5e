#pragma once
// CUDA runtime plumbing shared by the backend: error checks that throw
// attnlab::Error, and a guard that makes one device current for a scope.
#include <cuda_runtime.h>

#include "core/error.h"

namespace attnlab::cuda {

// Throws attnlab::Error naming the failed call, its location and CUDA's message.
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);

// Checks the launch of the kernel just queued (bad configuration, no device,
// or an earlier asynchronous failure that poisoned the context).
void check_launch(const char* kernel, const char* file, int line);

// Makes `index` the current device for the scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace attnlab::cuda

#define ATTNLAB_CUDA_CHECK(call)                                                      \
  do {                                                                                \
    cudaError_t attnlab_cuda_err_ = (call);                                           \
    if (attnlab_cuda_err_ != cudaSuccess)                                             \
      ::attnlab::cuda::throw_cuda_error(attnlab_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define ATTNLAB_CUDA_CHECK_LAUNCH(kernel) ::attnlab::cuda::check_launch(kernel, __FILE__, __LINE__)
