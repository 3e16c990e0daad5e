// The multi-tensor table of the CUDA optimizer and clipping kernels
// (core/cuda/multi_tensor.h), checked on the host: every element of every
// tensor lies in exactly one chunk, rows read back as packed, and the device
// copy (optim/device_table.h) is made once while the table is unchanged.
#include <gtest/gtest.h>

#include <vector>

#include "core/cuda/multi_tensor.h"
#include "optim/device_table.h"
#include "test_util.h"

using namespace attnlab;
using namespace attnlab::cuda;

namespace {

const void* fake_pointer(int64_t v) { return reinterpret_cast<const void*>(static_cast<intptr_t>(v)); }

MultiTensorTable table_of(const std::vector<int64_t>& numels, int width, int64_t chunk) {
  std::vector<std::vector<const void*>> rows;
  for (size_t t = 0; t < numels.size(); ++t) {
    std::vector<const void*> row;
    for (int k = 0; k < width; ++k) row.push_back(k == 2 && t == 1 ? nullptr : fake_pointer(4096 * (t + 1) + 8 * k));
    rows.push_back(row);
  }
  return pack_multi_tensor(rows, numels, width, chunk);
}

}  // namespace

TEST(MultiTensorTable, ChunksCoverEveryElementOnce) {
  const std::vector<int64_t> numels = {1, 7, 0, 8, 9, 16, 3};
  for (int64_t chunk : {1, 4, 8, 100}) {
    MultiTensorTable t = table_of(numels, 3, chunk);
    MultiTensorView v = t.view(t.words.data());
    ASSERT_EQ(v.n_tensors, static_cast<int64_t>(numels.size()));
    ASSERT_EQ(static_cast<int64_t>(t.words.size()), v.n_tensors * 4 + 2 * v.n_chunks);
    std::vector<std::vector<int>> seen(numels.size());
    for (size_t i = 0; i < numels.size(); ++i) seen[i].assign(static_cast<size_t>(numels[i]), 0);
    int64_t prev_tensor = 0;
    for (int64_t c = 0; c < v.n_chunks; ++c) {
      int64_t tensor = v.chunk_tensor(c), begin = v.chunk_begin(c), len = v.chunk_len(c);
      ASSERT_GE(tensor, prev_tensor) << "chunks follow the tensors' order";
      prev_tensor = tensor;
      ASSERT_GE(len, 1) << "chunk " << c;
      ASSERT_LE(len, chunk);
      ASSERT_EQ(begin % chunk, 0);
      ASSERT_LE(begin + len, numels[static_cast<size_t>(tensor)]);
      for (int64_t i = begin; i < begin + len; ++i) seen[static_cast<size_t>(tensor)][static_cast<size_t>(i)]++;
    }
    int64_t expect_chunks = 0;
    for (size_t i = 0; i < numels.size(); ++i) {
      expect_chunks += (numels[i] + chunk - 1) / chunk;
      for (int s : seen[i]) EXPECT_EQ(s, 1) << "tensor " << i << " chunk " << chunk;
    }
    EXPECT_EQ(v.n_chunks, expect_chunks);
  }
}

TEST(MultiTensorTable, RowsReadBackAsPacked) {
  MultiTensorTable t = table_of({5, 70000, 2}, 4, kMultiTensorChunk);
  MultiTensorView v = t.view(t.words.data());
  for (int64_t tensor = 0; tensor < 3; ++tensor)
    for (int k = 0; k < 4; ++k) {
      int64_t want = k == 2 && tensor == 1 ? 0 : 4096 * (tensor + 1) + 8 * k;
      EXPECT_EQ(v.pointer(tensor, k), want) << tensor << "," << k;
    }
  EXPECT_EQ(v.numel(1), 70000);
  // 70000 = 2 full chunks of 32768 and a tail of 4464.
  ASSERT_EQ(v.n_chunks, 1 + 3 + 1);
  EXPECT_EQ(v.chunk_tensor(3), 1);
  EXPECT_EQ(v.chunk_begin(3), 2 * kMultiTensorChunk);
  EXPECT_EQ(v.chunk_len(3), 70000 - 2 * kMultiTensorChunk);
  EXPECT_EQ(v.chunk_len(1), kMultiTensorChunk);
}

TEST(MultiTensorTable, BadInputIsOneClearError) {
  EXPECT_ERROR_MENTIONS(table_of({3}, 5, 8), "width 5");
  EXPECT_ERROR_MENTIONS(table_of({3}, 1, 0), "chunk 0");
  EXPECT_ERROR_MENTIONS(pack_multi_tensor({{fake_pointer(8)}}, {3, 4}, 1), "1 pointer rows for 2 tensors");
  EXPECT_ERROR_MENTIONS(pack_multi_tensor({{fake_pointer(8)}}, {-1}, 1), "row 0");
}

TEST(DeviceTableCache, CopiesOnlyWhenTheTableChanges) {
  DeviceTableCache cache;
  MultiTensorTable a = table_of({3, 4}, 2, 8), b = table_of({3, 5}, 2, 8);
  const Tensor& w1 = cache.words(a, Device::cpu());
  EXPECT_EQ(w1.to_vector<int64_t>(), a.words);
  const void* first = w1.raw_data();
  EXPECT_EQ(cache.words(a, Device::cpu()).raw_data(), first);
  EXPECT_EQ(cache.uploads(), 1);
  EXPECT_EQ(cache.words(b, Device::cpu()).to_vector<int64_t>(), b.words);
  EXPECT_EQ(cache.uploads(), 2);
  cache.words(b, Device::cpu());
  EXPECT_EQ(cache.uploads(), 2);
}
