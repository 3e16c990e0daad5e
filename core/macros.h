#pragma once
// ATTNLAB_HOST_DEVICE marks small math functors that both backends share: under
// nvcc they compile for host and device, elsewhere they are plain inline code.
#if defined(__CUDACC__)
#define ATTNLAB_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ATTNLAB_HOST_DEVICE inline
#endif
