#pragma once
// ATTNLAB_HOST_DEVICE marks small math functors that both backends share: under
// nvcc they compile for host and device, elsewhere they are plain inline code.
#if defined(__CUDACC__)
#define ATTNLAB_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ATTNLAB_HOST_DEVICE inline
#endif

// ATTNLAB_UNROLL asks nvcc to unroll the loop that follows (fixed trip counts
// keep per-thread arrays in registers); host compilers see nothing, so shared
// headers stay free of pragmas they would warn about.
#if defined(__CUDA_ARCH__)
#define ATTNLAB_UNROLL _Pragma("unroll")
#else
#define ATTNLAB_UNROLL
#endif
