#include "core/cuda/runtime.h"

#include "core/cuda/cuda_ops.h"
#include "core/device.h"

namespace attnlab {

namespace cuda {

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  throw Error(detail::cat("CUDA error: ", call, " at ", file, ":", line, ": ",
                          cudaGetErrorName(err), ": ", cudaGetErrorString(err)));
}

void check_launch(const char* kernel, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, kernel, file, line);
}

DeviceGuard::DeviceGuard(int index) {
  ATTNLAB_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != index) ATTNLAB_CUDA_CHECK(cudaSetDevice(index));
}

DeviceGuard::~DeviceGuard() {
  int current = -1;
  // A destructor must not throw; a failure here resurfaces on the next checked call.
  if (cudaGetDevice(&current) == cudaSuccess && current != previous_) cudaSetDevice(previous_);
}

void synchronize() { ATTNLAB_CUDA_CHECK(cudaDeviceSynchronize()); }

}  // namespace cuda

int cuda_device_count() {
  // The count cannot change while the process runs; ask the driver once.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      // No driver or no device: the backend is simply absent. Clear the error
      // so the next checked call does not report it.
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

}  // namespace attnlab
