// The multi-tensor table of the CUDA optimizer and clipping kernels
// (core/cuda/multi_tensor.h), checked on the host: every element of every
// tensor lies in exactly one chunk, rows read back as packed, the device copy
// (optim/device_table.h) is made once while the table is unchanged, and the
// kernels' per-element updates (core/cuda/optim_math.h) walked over a table of
// host pointers chunk by chunk give the CPU optimizers' results.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/multi_tensor.h"
#include "core/cuda/optim_math.h"
#include "core/ops.h"
#include "optim/adamw.h"
#include "optim/device_table.h"
#include "optim/sgd.h"
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

// ---- the kernels' per-element updates (core/cuda/optim_math.h) over a table of
// host pointers, visited chunk by chunk as the CUDA blocks do, against the CPU optimizers ----

namespace {

// Walks every chunk of `t` (host pointers) as the kernels' blocks do: f(tensor, element).
template <class F>
void for_each_chunk_element(const MultiTensorTable& t, F f) {
  MultiTensorView v = t.view(t.words.data());
  for (int64_t c = 0; c < v.n_chunks; ++c)
    for (int64_t i = 0; i < v.chunk_len(c); ++i) f(v, v.chunk_tensor(c), v.chunk_begin(c) + i);
}

template <class T>
T* at(const MultiTensorView& v, int64_t tensor, int k) {
  return reinterpret_cast<T*>(static_cast<intptr_t>(v.pointer(tensor, k)));
}

NamedVars random_params(DType dt, uint64_t seed) {
  // gcc 12 raises a false -Wrestrict on std::string operator+ here (GCC bug 105329): fixed names.
  const char* names[] = {"p0", "p1", "p2"};
  const Shape shapes[] = {{3, 5}, {21}, {1}};
  NamedVars out;
  for (int i = 0; i < 3; ++i) {
    Tensor t = Tensor::empty(shapes[i], DType::f64);
    ops::uniform(t, seed + static_cast<uint64_t>(i), 0, -1, 1);
    out.emplace_back(names[i], Var(t.to(dt), true));
  }
  return out;
}

NamedVars copy_of(const NamedVars& ps) {
  NamedVars out;
  for (const auto& [n, v] : ps) out.emplace_back(n, Var(v.data().clone(), true));
  return out;
}

void set_random_grads(NamedVars& ps, int step) {
  for (size_t i = 0; i < ps.size(); ++i) {
    Tensor g = Tensor::empty(ps[i].second.shape(), DType::f64);
    ops::uniform(g, 100 * static_cast<uint64_t>(step) + i, 0, -2, 2);
    ps[i].second.grad() = g.to(ps[i].second.dtype());
  }
}

void expect_params_near(const NamedVars& got, const NamedVars& want, double tol) {
  for (size_t i = 0; i < want.size(); ++i) {
    auto g = got[i].second.data().to_vector<double>(), w = want[i].second.data().to_vector<double>();
    for (size_t k = 0; k < w.size(); ++k) EXPECT_NEAR(g[k], w[k], tol * (1 + std::abs(w[k]))) << "parameter " << i;
  }
}

template <class T>
void adamw_over_table(DType dt) {
  const double lr = 0.05, wd = 0.1;
  AdamWOptions o;
  o.lr = lr;
  NamedVars ref = random_params(dt, 3), mine = copy_of(ref);
  AdamW opt({{ref, wd, 1.0}}, o);
  std::vector<Tensor> m, v;
  for (const auto& np : mine) {
    m.push_back(Tensor::zeros_like(np.second.data()));
    v.push_back(Tensor::zeros_like(np.second.data()));
  }
  for (int step = 1; step <= 3; ++step) {
    set_random_grads(ref, step);
    set_random_grads(mine, step);
    opt.step();
    std::vector<std::vector<const void*>> rows;
    std::vector<int64_t> numels;
    for (size_t i = 0; i < mine.size(); ++i) {
      rows.push_back({mine[i].second.data().raw_data(), mine[i].second.grad().raw_data(), m[i].raw_data(),
                      v[i].raw_data()});
      numels.push_back(mine[i].second.numel());
    }
    MultiTensorTable table = pack_multi_tensor(rows, numels, 4, /*chunk=*/8);
    double t = step;
    auto update = AdamWElement<T>::from({1 - lr * wd, o.beta1, o.beta2, lr / (1 - std::pow(o.beta1, t)),
                                         1 / std::sqrt(1 - std::pow(o.beta2, t)), o.eps});
    for_each_chunk_element(table, [&](const MultiTensorView& tv, int64_t k, int64_t i) {
      update(at<T>(tv, k, 0)[i], at<T>(tv, k, 1)[i], at<T>(tv, k, 2)[i], at<T>(tv, k, 3)[i]);
    });
  }
  SCOPED_TRACE(testing::Message() << "adamw " << dtype_name(dt));
  expect_params_near(mine, ref, dt == DType::f64 ? 1e-14 : 1e-6);
  auto state = opt.state();
  for (size_t i = 0; i < mine.size(); ++i) {
    auto want = state.at(ref[i].first).at("exp_avg_sq").to_vector<double>(), got = v[i].to_vector<double>();
    for (size_t k = 0; k < want.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-6 * (1 + want[k]));
  }
}

template <class T>
void sgd_over_table(DType dt, double momentum, bool nesterov) {
  SGDOptions o;
  o.lr = 0.1;
  o.momentum = momentum;
  o.nesterov = nesterov;
  o.dampening = nesterov ? 0.0 : 0.2;
  const double wd = 0.01;
  NamedVars ref = random_params(dt, 5), mine = copy_of(ref);
  SGD opt({{ref, wd, 1.0}}, o);
  std::vector<Tensor> buf;
  for (const auto& np : mine) buf.push_back(Tensor::zeros_like(np.second.data()));
  const int width = momentum != 0 ? 3 : 2;
  for (int step = 1; step <= 3; ++step) {
    set_random_grads(ref, step);
    set_random_grads(mine, step);
    opt.step();
    std::vector<std::vector<const void*>> rows;
    std::vector<int64_t> numels;
    for (size_t i = 0; i < mine.size(); ++i) {
      std::vector<const void*> row{mine[i].second.data().raw_data(), mine[i].second.grad().raw_data()};
      if (width == 3) row.push_back(buf[i].raw_data());
      rows.push_back(row);
      numels.push_back(mine[i].second.numel());
    }
    MultiTensorTable table = pack_multi_tensor(rows, numels, width, /*chunk=*/4);
    auto update = SGDElement<T>::from({o.lr, wd, o.momentum, o.dampening, o.nesterov, step == 1});
    for_each_chunk_element(table, [&](const MultiTensorView& tv, int64_t k, int64_t i) {
      update(at<T>(tv, k, 0)[i], at<T>(tv, k, 1)[i], width == 3 ? at<T>(tv, k, 2) + i : nullptr);
    });
  }
  SCOPED_TRACE(testing::Message() << "sgd momentum " << momentum << (nesterov ? " nesterov " : " ")
                                  << dtype_name(dt));
  expect_params_near(mine, ref, dt == DType::f64 ? 1e-14 : 1e-6);
}

}  // namespace

TEST(MultiTensorKernelMath, AdamWOverAHostTableMatchesTheOptimizer) {
  adamw_over_table<float>(DType::f32);
  adamw_over_table<double>(DType::f64);
}

TEST(MultiTensorKernelMath, SGDOverAHostTableMatchesTheOptimizer) {
  for (auto [momentum, nesterov] : {std::pair{0.0, false}, {0.9, false}, {0.9, true}}) {
    sgd_over_table<float>(DType::f32, momentum, nesterov);
    sgd_over_table<double>(DType::f64, momentum, nesterov);
  }
}

TEST(MultiTensorKernelMath, ScaleIsAxpysArithmetic) {
  Tensor g = Tensor::from(std::vector<float>{0.5f, -3.25f, 1e-3f, 7.0f});
  Tensor want = g.clone();
  const double coef = 0.37;
  ops::axpy(want, coef - 1.0, want);
  auto gv = g.to_vector<float>(), wv = want.to_vector<float>();
  for (size_t i = 0; i < gv.size(); ++i)
    EXPECT_FLOAT_EQ(scale_element(gv[i], static_cast<float>(coef - 1.0)), wv[i]);
}
