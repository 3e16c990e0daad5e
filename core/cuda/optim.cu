// Multi-tensor kernels of AdamW, SGD and gradient clipping (core/cuda/optim_kernels.h).
// Each block takes chunks block-stride; its threads stride over the chunk's
// elements. The element-wise kernels have no cross-thread dependencies; the
// sum of squares reduces each chunk with block_sum's fixed tree and then the
// chunk sums in chunk order, so it never depends on timing. The per-element
// arithmetic is core/cuda/optim_math.h's (shared with host tests).
#include "core/cuda/block_reduce.cuh"
#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"
#include "core/cuda/optim_kernels.h"
#include "core/cuda/optim_math.h"

namespace attnlab::cuda {

namespace {

template <class T>
__device__ __forceinline__ T* row_pointer(const MultiTensorView& t, int64_t tensor, int k) {
  return reinterpret_cast<T*>(static_cast<intptr_t>(t.pointer(tensor, k)));
}

template <class T>
__global__ void adamw_kernel(MultiTensorView table, AdamWElement<T> update) {
  for (int64_t c = blockIdx.x; c < table.n_chunks; c += gridDim.x) {
    const int64_t t = table.chunk_tensor(c), begin = table.chunk_begin(c), len = table.chunk_len(c);
    T* p = row_pointer<T>(table, t, 0) + begin;
    const T* g = row_pointer<T>(table, t, 1) + begin;
    T* m = row_pointer<T>(table, t, 2) + begin;
    T* v = row_pointer<T>(table, t, 3) + begin;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) update(p[i], g[i], m[i], v[i]);
  }
}

template <class T>
__global__ void sgd_kernel(MultiTensorView table, SGDElement<T> update) {
  for (int64_t c = blockIdx.x; c < table.n_chunks; c += gridDim.x) {
    const int64_t t = table.chunk_tensor(c), begin = table.chunk_begin(c), len = table.chunk_len(c);
    T* p = row_pointer<T>(table, t, 0) + begin;
    const T* g = row_pointer<T>(table, t, 1) + begin;
    T* buf = table.width > 2 ? row_pointer<T>(table, t, 2) : nullptr;  // no momentum: rows {p, g}
    if (buf) buf += begin;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) update(p[i], g[i], buf ? buf + i : nullptr);
  }
}

// partial[c] = sum over chunk c of g^2, in double.
template <class T>
__global__ void sum_squares_kernel(MultiTensorView table, double* partial) {
  for (int64_t c = blockIdx.x; c < table.n_chunks; c += gridDim.x) {
    const int64_t t = table.chunk_tensor(c), begin = table.chunk_begin(c), len = table.chunk_len(c);
    const T* g = row_pointer<T>(table, t, 0) + begin;
    double acc = 0;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
      const double gi = static_cast<double>(g[i]);
      acc = __dadd_rn(acc, __dmul_rn(gi, gi));
    }
    acc = block_sum(acc);  // every thread of the block takes part: c is uniform over the block
    if (threadIdx.x == 0) partial[c] = acc;
  }
}

// out[0] = sum of partial[0 .. n): one block, threads stride in order, then the fixed tree.
__global__ void sum_partials_kernel(const double* partial, int64_t n, double* out) {
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) out[0] = acc;
}

// g = g + s g (ops::axpy's arithmetic with y = x = g).
template <class T>
__global__ void scale_kernel(MultiTensorView table, T s) {
  for (int64_t c = blockIdx.x; c < table.n_chunks; c += gridDim.x) {
    const int64_t t = table.chunk_tensor(c), begin = table.chunk_begin(c), len = table.chunk_len(c);
    T* g = row_pointer<T>(table, t, 0) + begin;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) g[i] = scale_element(g[i], s);
  }
}

// One block per chunk up to the usual grid cap; blocks loop over the rest.
unsigned chunk_blocks(int64_t n_chunks) { return row_blocks(n_chunks); }

// Checks the table against its device words and returns the device view.
MultiTensorView device_view(const char* op, const MultiTensorTable& table, const Tensor& words, int min_width,
                            int max_width) {
  ATTNLAB_CHECK(table.width >= min_width && table.width <= max_width, "cuda::", op, ": table rows hold ",
                table.width, " pointers, expected ", min_width, " to ", max_width);
  ATTNLAB_CHECK(words.device().is_cuda() && words.dtype() == DType::i64 &&
                    words.numel() == static_cast<int64_t>(table.words.size()),
                "cuda::", op, ": table words ", words.str(), " do not match a table of ", table.words.size(),
                " words");
  return table.view(words.data<int64_t>());
}

template <class F>
void dispatch_optim(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::f64: f.template operator()<double>(); return;
    default: throw Error(detail::cat("cuda::", op, ": parameters must be f32 or f64, got ", dtype_name(dt)));
  }
}

}  // namespace

void adamw_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, const AdamWConsts& c) {
  MultiTensorView view = device_view("adamw_multi", table, words, 4, 4);
  if (table.n_chunks == 0) return;
  DeviceGuard guard(words.device().index);
  dispatch_optim(dtype, "adamw_multi", [&]<class T>() {
    adamw_kernel<T><<<chunk_blocks(table.n_chunks), kThreads>>>(view, AdamWElement<T>::from(c));
    ATTNLAB_CUDA_CHECK_LAUNCH("adamw_kernel");
  });
}

void sgd_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, const SGDConsts& c) {
  MultiTensorView view = device_view("sgd_multi", table, words, 2, 3);
  if (table.n_chunks == 0) return;
  DeviceGuard guard(words.device().index);
  dispatch_optim(dtype, "sgd_multi", [&]<class T>() {
    sgd_kernel<T><<<chunk_blocks(table.n_chunks), kThreads>>>(view, SGDElement<T>::from(c));
    ATTNLAB_CUDA_CHECK_LAUNCH("sgd_kernel");
  });
}

void sum_squares_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, Tensor& out) {
  MultiTensorView view = device_view("sum_squares_multi", table, words, 1, 1);
  ATTNLAB_CHECK(out.device() == words.device() && out.dtype() == DType::f64 && out.numel() == 1,
                "cuda::sum_squares_multi: out must be f64 with one element on ", words.device().str(), ", got ",
                out.str());
  DeviceGuard guard(words.device().index);
  if (table.n_chunks == 0) return fill(out, 0.0);
  dispatch_optim(dtype, "sum_squares_multi", [&]<class T>() {
    Tensor partial = Tensor::empty({table.n_chunks}, DType::f64, words.device());
    sum_squares_kernel<T><<<chunk_blocks(table.n_chunks), kThreads>>>(view, partial.data<double>());
    ATTNLAB_CUDA_CHECK_LAUNCH("sum_squares_kernel");
    sum_partials_kernel<<<1, kMaxBlockThreads>>>(partial.data<double>(), table.n_chunks, out.data<double>());
    ATTNLAB_CUDA_CHECK_LAUNCH("sum_partials_kernel");
  });
}

void scale_multi(DType dtype, const MultiTensorTable& table, const Tensor& words, double coef) {
  MultiTensorView view = device_view("scale_multi", table, words, 1, 1);
  if (table.n_chunks == 0) return;
  DeviceGuard guard(words.device().index);
  dispatch_optim(dtype, "scale_multi", [&]<class T>() {
    scale_kernel<T><<<chunk_blocks(table.n_chunks), kThreads>>>(view, T(coef - 1.0));
    ATTNLAB_CUDA_CHECK_LAUNCH("scale_kernel");
  });
}

}  // namespace attnlab::cuda
