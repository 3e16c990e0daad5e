#pragma once
// Runs the fused attention's CUDA kernel source (core/cuda/flash_kernel.cuh,
// flash_forward.cuh, flash_backward.cuh) on the host, so their indexing, tile
// edges, masking and lane reductions are exercised without a GPU
// (test_cuda_flash_emulated.cpp). Those headers use only a few builtins:
// threadIdx / blockIdx / gridDim / blockDim, __syncthreads, __syncwarp,
// __shfl_xor_sync and dynamic shared memory; this header supplies them.
//
// A block's threads are fibers (ucontext) on the calling thread, switched only
// when one waits at a barrier, so a run is deterministic. Barriers count every
// thread of the block (or warp): a thread that returned before a barrier the
// others reach is reported as a deadlock instead of being skipped. Shared
// memory is filled with 0xFF bytes (NaN in f32/f64) before each block, so a
// read of a slot no thread wrote shows up as NaN in the results.
//
// The tensor-core kernel's WMMA calls (flash_forward_mma.cuh) are emulated at
// the API level: every lane holds the whole 16 x 16 fragment and computes the
// whole product in f32 (the hardware splits fragments among lanes in an
// undocumented layout, which the kernel never relies on). A load reads memory
// when its lane gets there (never later than the GPU would); a store waits for
// the whole warp, as documented, and then each lane writes only its share of
// the tile (every 32nd element), so a lane reading what another lane's store
// wrote needs the kernel's own __syncwarp, here as on the GPU.
//
// What it cannot show: every race a missing __syncthreads could cause on a GPU
// (fibers run in two fixed orders, alternating between barrier rounds), and
// anything about performance. Include it before the kernel headers and after
// every other header (it defines __global__, __device__ and friends as macros).
#include <ucontext.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "core/dtype.h"

#define ATTNLAB_FLASH_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

namespace attnlab::emu {

struct Dim3 {
  unsigned x = 0, y = 0, z = 0;
};

struct Machine {
  static constexpr size_t kStackBytes = 256 * 1024;
  struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done = false;
  };
  unsigned threads = 0;
  Dim3 block, grid, block_dim;
  std::vector<unsigned char> smem;
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  unsigned current = 0;
  std::function<void()> body;
  unsigned block_arrived = 0;
  uint64_t block_generation = 0;
  std::vector<unsigned> warp_arrived;
  std::vector<uint64_t> warp_generation;
  std::vector<std::array<unsigned char, 8>> shuffle_slot;  // one per thread
  uint64_t progress = 0;  // arrivals, releases and finished threads: a sweep without any is a deadlock
};

inline Machine& machine() {
  static Machine m;
  return m;
}

inline Dim3 thread_index() { return {machine().current, 0, 0}; }
inline unsigned char* dynamic_shared() { return machine().smem.data(); }

inline void yield() {
  Machine& m = machine();
  swapcontext(&m.fibers[m.current].ctx, &m.scheduler);
}

// Waits until `expected` threads have arrived at this barrier.
inline void barrier(unsigned& arrived, uint64_t& generation, unsigned expected) {
  Machine& m = machine();
  const uint64_t gen = generation;
  ++m.progress;
  if (++arrived == expected) {
    arrived = 0;
    ++generation;
    return;
  }
  while (generation == gen) yield();
}

inline void block_barrier() {
  Machine& m = machine();
  barrier(m.block_arrived, m.block_generation, m.threads);
}

inline void warp_barrier() {
  Machine& m = machine();
  const unsigned w = m.current / 32, in_warp = m.threads - 32 * w < 32 ? m.threads - 32 * w : 32;
  barrier(m.warp_arrived[w], m.warp_generation[w], in_warp);
}

inline void fiber_entry() {
  Machine& m = machine();
  m.body();
  m.fibers[m.current].done = true;
  ++m.progress;
}  // returns to uc_link: the scheduler

// Runs `kernel_call` (a call of the kernel with its arguments) as `threads`
// threads of every block of `grid`, with `smem_bytes` of dynamic shared memory.
inline void launch(Dim3 grid, unsigned threads, size_t smem_bytes, std::function<void()> kernel_call) {
  Machine& m = machine();
  m.threads = threads;
  m.grid = grid;
  m.block_dim = {threads, 1, 1};
  m.body = std::move(kernel_call);
  m.fibers.resize(threads);
  m.shuffle_slot.assign(threads, {});
  for (unsigned z = 0; z < (grid.z ? grid.z : 1); ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        m.block = {x, y, z};
        m.smem.assign(smem_bytes, 0xFF);
        m.block_arrived = 0;
        m.warp_arrived.assign((threads + 31) / 32, 0);
        m.warp_generation.assign((threads + 31) / 32, 0);
        for (Machine::Fiber& f : m.fibers) {
          f.stack.resize(Machine::kStackBytes);
          f.done = false;
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = &m.scheduler;
          makecontext(&f.ctx, fiber_entry, 0);
        }
        // Sweeps alternate between ascending and descending thread order, so a
        // missing barrier between warps shows whichever side it wrongly relies on.
        for (bool all_done = false, descending = false; !all_done; descending = !descending) {
          const uint64_t before = m.progress;
          all_done = true;
          for (unsigned i = 0; i < threads; ++i) {
            const unsigned t = descending ? threads - 1 - i : i;
            if (m.fibers[t].done) continue;
            all_done = false;
            m.current = t;
            swapcontext(&m.scheduler, &m.fibers[t].ctx);
          }
          if (!all_done && m.progress == before) {
            std::fprintf(stderr, "emulated block (%u, %u): deadlock at a barrier\n", x, y);
            std::abort();
          }
        }
      }
}

}  // namespace attnlab::emu

#define threadIdx (::attnlab::emu::thread_index())
#define blockIdx (::attnlab::emu::machine().block)
#define gridDim (::attnlab::emu::machine().grid)
#define blockDim (::attnlab::emu::machine().block_dim)

inline void __syncthreads() { ::attnlab::emu::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::attnlab::emu::warp_barrier(); }

// Every lane of the warp publishes v, then reads its partner's.
template <class T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8);
  ::attnlab::emu::Machine& m = ::attnlab::emu::machine();
  const unsigned t = m.current, partner = (t & ~31u) | ((t & 31u) ^ static_cast<unsigned>(lane_mask));
  std::memcpy(m.shuffle_slot[t].data(), &v, sizeof v);
  __syncwarp();
  T r;
  std::memcpy(&r, m.shuffle_slot[partner].data(), sizeof r);
  __syncwarp();
  return r;
}

// ---- WMMA (nvcuda::wmma) at the API level: 16 x 16 x 16 only ----
using __nv_bfloat16 = ::attnlab::bf16;

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// Element (i, j) of the 16 x 16 operand (a: row m, col k; b: row k, col n;
// accumulator: row m, col n) at x[16 i + j].
template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has 16x16x16 fragments only");
  T x[256];
};

template <class Use, class T, class Layout, class V>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, V v) {
  for (T& e : f.x) e = static_cast<T>(v);
}

namespace detail {
inline bool is_row_major(row_major) { return true; }
inline bool is_row_major(col_major) { return false; }
}  // namespace detail

// a (row-major: a(m, k) = p[m ld + k]) or b (row-major: b(k, n) = p[k ld + n]):
// either way x[16 i + j] = p[i ld + j] row-major, p[j ld + i] column-major.
template <class Use, class T, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ld) {
  const bool row = detail::is_row_major(Layout{});
  for (unsigned i = 0; i < 16; ++i)
    for (unsigned j = 0; j < 16; ++j) f.x[16 * i + j] = row ? p[i * ld + j] : p[j * ld + i];
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ld, layout_t l) {
  for (unsigned i = 0; i < 16; ++i)
    for (unsigned j = 0; j < 16; ++j) f.x[16 * i + j] = l == mem_row_major ? p[i * ld + j] : p[j * ld + i];
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld, layout_t l) {
  __syncwarp();
  const unsigned lane = ::attnlab::emu::machine().current % 32;
  for (unsigned e = lane; e < 256; e += 32) {
    const unsigned i = e / 16, j = e % 16;
    (l == mem_row_major ? p[i * ld + j] : p[j * ld + i]) = f.x[e];
  }
}

template <class T, class LayoutA, class LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LayoutB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float r[256];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float acc = c.x[16 * m + n];
      for (int k = 0; k < 16; ++k) acc += static_cast<float>(a.x[16 * m + k]) * static_cast<float>(b.x[16 * k + n]);
      r[16 * m + n] = acc;
    }
  std::memcpy(d.x, r, sizeof r);
}

}  // namespace nvcuda::wmma
