// fill and copy: constant fills, and copies between any two devices with dtype conversion.
#include <cmath>
#include <cstring>

#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

namespace {

template <class T>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = value;
}

template <class D, class S>
__global__ void convert_kernel(D* out, const S* in, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = cast_to<D>(in[i]);
}

// dst = src converted, both on the current device.
void convert_on_device(Tensor& dst, const Tensor& src) {
  int64_t n = dst.numel();
  dispatch_all(dst.dtype(), "copy", [&]<class D>() {
    dispatch_all(src.dtype(), "copy", [&]<class S>() {
      convert_kernel<D, S><<<blocks_for(n), kThreads>>>(static_cast<D*>(dst.raw_data()),
                                                         static_cast<const S*>(src.raw_data()), n);
      ATTNLAB_CUDA_CHECK_LAUNCH("convert_kernel");
    });
  });
}

// Same dtype, any device pair: a plain byte copy.
void copy_bytes(Tensor& dst, const Tensor& src) {
  size_t bytes = dst.nbytes();
  Device dd = dst.device(), sd = src.device();
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst.raw_data(), src.raw_data(), bytes);
  } else if (dd.is_cpu()) {
    // Blocks until the bytes are on the host: reads after copy() see them.
    DeviceGuard guard(sd.index);
    ATTNLAB_CUDA_CHECK(cudaMemcpy(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToHost));
  } else if (sd.is_cpu()) {
    DeviceGuard guard(dd.index);
    ATTNLAB_CUDA_CHECK(cudaMemcpy(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyHostToDevice));
  } else if (dd.index == sd.index) {
    DeviceGuard guard(dd.index);
    ATTNLAB_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes,
                                       cudaMemcpyDeviceToDevice, 0));
  } else {
    DeviceGuard guard(dd.index);
    ATTNLAB_CUDA_CHECK(
        cudaMemcpyPeerAsync(dst.raw_data(), dd.index, src.raw_data(), sd.index, bytes, 0));
  }
}

}  // namespace

void fill(Tensor& t, double value) {
  int64_t n = t.numel();
  if (n == 0) return;
  DeviceGuard guard(t.device().index);
  if (value == 0.0 && !std::signbit(value)) {
    // +0 is all-zero bytes in every dtype.
    ATTNLAB_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), 0));
    return;
  }
  dispatch_all(t.dtype(), "fill", [&]<class T>() {
    fill_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(t.raw_data()), n,
                                                cast_to<T>(value));
    ATTNLAB_CUDA_CHECK_LAUNCH("fill_kernel");
  });
}

void copy(Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  if (dst.dtype() == src.dtype()) return copy_bytes(dst, src);
  Device dd = dst.device(), sd = src.device();
  ATTNLAB_CHECK(dd.is_cuda() || sd.is_cuda(), "cuda::copy: both tensors are on the CPU (",
                dst.str(), " <- ", src.str(), ")");
  if (dd.is_cpu()) {
    // Convert where the data is, then bring the result over.
    DeviceGuard guard(sd.index);
    Tensor tmp = Tensor::empty(src.shape(), dst.dtype(), sd);
    convert_on_device(tmp, src);
    copy_bytes(dst, tmp);
  } else if (sd.is_cuda() && sd.index == dd.index) {
    DeviceGuard guard(dd.index);
    convert_on_device(dst, src);
  } else {
    // Bring the bytes over unconverted, then convert where they land. The
    // temporary goes back to the cache while the kernel may still read it; that
    // is safe because all work is ordered on the one default stream.
    DeviceGuard guard(dd.index);
    Tensor tmp = Tensor::empty(src.shape(), src.dtype(), dd);
    copy_bytes(tmp, src);
    convert_on_device(dst, tmp);
  }
}

}  // namespace attnlab::cuda
