#pragma once
// The table behind the multi-tensor launches of the optimizers and gradient
// clipping (core/cuda/optim_kernels.h): one launch updates every tensor of a
// list. The tensors are cut into chunks of at most kMultiTensorChunk elements
// and each CUDA block works on one chunk at a time, so one launch covers many
// small tensors and a few huge ones alike.
//
// The table is one int64 array, built on the host and copied to the device
// once while the tensor list is unchanged (optim/fused_table.h caches it):
//   rows:   n_tensors rows of `width` pointers followed by the tensor's numel
//   chunks: n_chunks pairs {tensor, first element}
// Plain C++ apart from ATTNLAB_HOST_DEVICE, so host tests check the arithmetic.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "core/macros.h"

namespace attnlab::cuda {

// Elements per chunk: 128 per thread of a 256-thread block.
constexpr int64_t kMultiTensorChunk = int64_t(1) << 15;
// At most this many pointers per tensor (p, g, m, v for AdamW).
constexpr int kMultiTensorMaxWidth = 4;

// A read-only view of a packed table (host or device memory).
struct MultiTensorView {
  const int64_t* words = nullptr;
  int64_t n_tensors = 0, n_chunks = 0;
  int width = 0;
  int64_t chunk = kMultiTensorChunk;

  ATTNLAB_HOST_DEVICE int64_t row_words() const { return width + 1; }
  // Pointer k of tensor t, as the integer it was packed from.
  ATTNLAB_HOST_DEVICE int64_t pointer(int64_t t, int k) const { return words[t * row_words() + k]; }
  ATTNLAB_HOST_DEVICE int64_t numel(int64_t t) const { return words[t * row_words() + width]; }
  ATTNLAB_HOST_DEVICE int64_t chunk_tensor(int64_t c) const { return words[n_tensors * row_words() + 2 * c]; }
  ATTNLAB_HOST_DEVICE int64_t chunk_begin(int64_t c) const { return words[n_tensors * row_words() + 2 * c + 1]; }
  // Elements in chunk c: a full chunk, or what is left of its tensor.
  ATTNLAB_HOST_DEVICE int64_t chunk_len(int64_t c) const {
    int64_t left = numel(chunk_tensor(c)) - chunk_begin(c);
    return left < chunk ? left : chunk;
  }
};

// The host side of a table: the words to copy to the device and their layout.
struct MultiTensorTable {
  std::vector<int64_t> words;
  int64_t n_tensors = 0, n_chunks = 0;
  int width = 0;
  int64_t chunk = kMultiTensorChunk;

  MultiTensorView view(const int64_t* device_words) const {
    return {device_words, n_tensors, n_chunks, width, chunk};
  }
};

// Packs `pointers[t]` (width each; null allowed, e.g. SGD without momentum) and
// `numels[t]` into a table. Empty tensors get a row but no chunk.
inline MultiTensorTable pack_multi_tensor(const std::vector<std::vector<const void*>>& pointers,
                                          const std::vector<int64_t>& numels, int width,
                                          int64_t chunk = kMultiTensorChunk) {
  ATTNLAB_CHECK(width >= 1 && width <= kMultiTensorMaxWidth, "multi-tensor table: width ", width,
                " outside [1, ", kMultiTensorMaxWidth, "]");
  ATTNLAB_CHECK(chunk >= 1, "multi-tensor table: chunk ", chunk, " < 1");
  ATTNLAB_CHECK(pointers.size() == numels.size(), "multi-tensor table: ", pointers.size(), " pointer rows for ",
                numels.size(), " tensors");
  MultiTensorTable t;
  t.width = width;
  t.chunk = chunk;
  t.n_tensors = static_cast<int64_t>(numels.size());
  for (size_t i = 0; i < numels.size(); ++i) {
    ATTNLAB_CHECK(static_cast<int>(pointers[i].size()) == width && numels[i] >= 0, "multi-tensor table: row ", i,
                  " has ", pointers[i].size(), " pointers and ", numels[i], " elements");
    for (const void* p : pointers[i]) t.words.push_back(static_cast<int64_t>(reinterpret_cast<intptr_t>(p)));
    t.words.push_back(numels[i]);
  }
  for (size_t i = 0; i < numels.size(); ++i)
    for (int64_t b = 0; b < numels[i]; b += chunk) {
      t.words.push_back(static_cast<int64_t>(i));
      t.words.push_back(b);
      ++t.n_chunks;
    }
  return t;
}

}  // namespace attnlab::cuda
