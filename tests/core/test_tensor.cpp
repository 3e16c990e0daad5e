// Tensor semantics: factories, views and storage sharing, copies, dtype
// conversion between every pair of dtypes, host reads and str().
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/ops.h"
#include "core/tensor.h"
#include "core/test_helpers.h"

using namespace attnlab;
using attnlab::testing::all_close;
using attnlab::testing::values;

namespace {
const DType kAllDTypes[] = {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u16};
}  // namespace

TEST(Tensor, DefaultIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.str(), "undefined");
  EXPECT_FALSE(t.shares_storage(t));
}

TEST(Tensor, EmptyHasShapeDtypeDevice) {
  for (DType dt : kAllDTypes) {
    Tensor t = Tensor::empty({2, 3, 4}, dt);
    EXPECT_TRUE(t.defined());
    EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
    EXPECT_EQ(t.dim(), 3);
    EXPECT_EQ(t.numel(), 24);
    EXPECT_EQ(t.dtype(), dt);
    EXPECT_EQ(t.device(), Device::cpu());
    EXPECT_EQ(t.nbytes(), 24 * dtype_size(dt));
    EXPECT_EQ(t.offset(), 0);
    EXPECT_EQ(t.size(0), 2);
    EXPECT_EQ(t.size(-1), 4);
    EXPECT_EQ(t.size(-3), 2);
  }
}

TEST(Tensor, EmptyWithZeroSizedDim) {
  Tensor t = Tensor::empty({3, 0, 2});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.numel(), 0);
  EXPECT_TRUE(t.to_vector<float>().empty());
  EXPECT_EQ(Tensor::zeros({0}).to_vector<double>().size(), 0u);
}

TEST(Tensor, ZerosOnesFullEveryDtype) {
  for (DType dt : kAllDTypes) {
    EXPECT_EQ(values(Tensor::zeros({2, 3}, dt)), std::vector<double>(6, 0.0)) << dtype_name(dt);
    EXPECT_EQ(values(Tensor::ones({5}, dt)), std::vector<double>(5, 1.0)) << dtype_name(dt);
    EXPECT_EQ(values(Tensor::full({1, 4}, 7.0, dt)), std::vector<double>(4, 7.0)) << dtype_name(dt);
  }
  EXPECT_EQ(Tensor::full({3}, -2.5, DType::f32).to_vector<float>(), (std::vector<float>{-2.5f, -2.5f, -2.5f}));
  EXPECT_EQ(Tensor::full({2}, -7, DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{-7, -7}));
  // bf16 fill rounds the value to bf16.
  EXPECT_EQ(Tensor::full({1}, 1.0 / 3.0, DType::bf16).to_vector<bf16>()[0].bits, bf16(1.0f / 3.0f).bits);
}

TEST(Tensor, ScalarIsZeroDimensional) {
  Tensor s = Tensor::scalar(3.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.dtype(), DType::f32);
  EXPECT_EQ(s.item<float>(), 3.5f);
  EXPECT_EQ(s.item<double>(), 3.5);
  EXPECT_EQ(s.str(), "f32[] cpu");
  Tensor i = Tensor::scalar(-4, DType::i32);
  EXPECT_EQ(i.item<int32_t>(), -4);
  EXPECT_EQ(i.item<int64_t>(), -4);
}

TEST(Tensor, Arange) {
  Tensor a = Tensor::arange(5);
  EXPECT_EQ(a.dtype(), DType::i64);
  EXPECT_EQ(a.shape(), Shape{5});
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Tensor::arange(4, DType::f32).to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(Tensor::arange(3, DType::u16).to_vector<uint16_t>(), (std::vector<uint16_t>{0, 1, 2}));
  Tensor z = Tensor::arange(0, DType::f64);
  EXPECT_EQ(z.shape(), Shape{0});
  EXPECT_EQ(z.dtype(), DType::f64);
}

TEST(Tensor, FromCopiesValuesWithShape) {
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  Tensor t = Tensor::from(v, {2, 3});
  EXPECT_EQ(t.dtype(), DType::f32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  v[0] = 100;  // the tensor holds a copy
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  // No shape: 1-D.
  Tensor d = Tensor::from<double>({1.5, -2.5});
  EXPECT_EQ(d.shape(), Shape{2});
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_EQ(Tensor::from<int32_t>({7}).dtype(), DType::i32);
  EXPECT_EQ(Tensor::from<int64_t>({7}).dtype(), DType::i64);
  EXPECT_EQ(Tensor::from<uint16_t>({7}).dtype(), DType::u16);
  EXPECT_EQ(Tensor::from<bf16>({bf16(2.0f)}).dtype(), DType::bf16);
  EXPECT_EQ(Tensor::from<uint16_t>({65535, 0}).to_vector<uint16_t>(), (std::vector<uint16_t>{65535, 0}));
  EXPECT_EQ(Tensor::from<float>({}).shape(), Shape{0});
}

TEST(Tensor, DataPointerAndTypedAccess) {
  Tensor t = Tensor::from<int32_t>({1, 2, 3});
  int32_t* p = t.data<int32_t>();
  p[1] = 20;
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{1, 20, 3}));
  EXPECT_EQ(static_cast<void*>(p), t.raw_data());
  EXPECT_THROW(t.data<float>(), Error);  // wrong dtype
}

TEST(Tensor, ReshapeIsAViewAndInfersMinusOne) {
  Tensor t = Tensor::arange(24, DType::f32);
  Tensor r = t.reshape({2, -1, 4});
  EXPECT_EQ(r.shape(), (Shape{2, 3, 4}));
  EXPECT_TRUE(r.shares_storage(t));
  EXPECT_EQ(r.raw_data(), t.raw_data());
  EXPECT_EQ(t.reshape({-1}).shape(), Shape{24});
  EXPECT_EQ(t.reshape({4, 6}).reshape({-1, 2}).shape(), (Shape{12, 2}));
  EXPECT_EQ(t.view({24, 1}).shape(), (Shape{24, 1}));
  EXPECT_EQ(r.flatten().shape(), Shape{24});
  EXPECT_EQ(Tensor::scalar(1).reshape({1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(Tensor::from<float>({1}).reshape({}).shape(), Shape{});
  // Writes through the view are visible in the original and back.
  r.data<float>()[5] = -1.0f;
  EXPECT_EQ(t.to_vector<float>()[5], -1.0f);
  t.data<float>()[23] = 99.0f;
  EXPECT_EQ(r.to_vector<float>()[23], 99.0f);
  // Zero-sized tensors reshape too.
  EXPECT_EQ(Tensor::empty({0, 3}).reshape({3, 0}).shape(), (Shape{3, 0}));
}

TEST(Tensor, ReshapeErrors) {
  Tensor t = Tensor::empty({2, 3});
  EXPECT_THROW(t.reshape({4}), Error);
  EXPECT_THROW(t.reshape({-1, -1}), Error);
  EXPECT_THROW(t.reshape({-1, 4}), Error);
  EXPECT_THROW(t.reshape({-2, 3}), Error);
  EXPECT_THROW(t.reshape({7, -1}), Error);
  EXPECT_THROW(t.reshape({0, -1}), Error);
}

TEST(Tensor, SliceAlongDimZeroIsAView) {
  Tensor t = Tensor::arange(12, DType::f64).reshape({4, 3});
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.numel(), 6);
  EXPECT_EQ(s.offset(), 3);
  EXPECT_TRUE(s.shares_storage(t));
  EXPECT_EQ(values(s), (std::vector<double>{3, 4, 5, 6, 7, 8}));
  // Writes through the slice land in the parent, and the other way round.
  s.fill_(-1.0);
  EXPECT_EQ(values(t), (std::vector<double>{0, 1, 2, -1, -1, -1, -1, -1, -1, 9, 10, 11}));
  t.data<double>()[4] = 42;
  EXPECT_EQ(values(s)[1], 42);
  // Slices of slices compose offsets.
  Tensor ss = s.slice(1, 2);
  EXPECT_EQ(ss.offset(), 6);
  EXPECT_EQ(values(ss), (std::vector<double>{-1, -1, -1}));
  // Empty and full slices.
  EXPECT_EQ(t.slice(2, 2).numel(), 0);
  EXPECT_EQ(values(t.slice(0, 4)), values(t));
  // A 1-D slice.
  Tensor v = Tensor::arange(6, DType::f32);
  EXPECT_EQ(values(v.slice(2, 5)), (std::vector<double>{2, 3, 4}));
  // A view's reshape keeps the offset.
  Tensor r = t.slice(1, 3).reshape({6});
  EXPECT_EQ(r.offset(), 3);
  EXPECT_EQ(values(r)[1], 42);
}

TEST(Tensor, SliceOutOfRangeThrows) {
  Tensor t = Tensor::empty({4, 3});
  EXPECT_THROW(t.slice(-1, 2), Error);
  EXPECT_THROW(t.slice(3, 2), Error);
  EXPECT_THROW(t.slice(0, 5), Error);
  EXPECT_THROW(Tensor::scalar(1).slice(0, 1), Error);
}

TEST(Tensor, NarrowOfASingleRowIsAView) {
  Tensor t = Tensor::arange(10, DType::f32);
  Tensor n = t.narrow(3, 4);
  EXPECT_EQ(n.shape(), Shape{4});
  EXPECT_TRUE(n.shares_storage(t));
  EXPECT_EQ(values(n), (std::vector<double>{3, 4, 5, 6}));
  n.data<float>()[0] = -5;
  EXPECT_EQ(t.to_vector<float>()[3], -5);
  // One row of a 2-D tensor (via slice) narrows to a view too.
  Tensor m = Tensor::arange(12, DType::f64).reshape({3, 4});
  Tensor row = m.slice(1, 2).narrow(1, 2);
  EXPECT_EQ(row.shape(), (Shape{1, 2}));
  EXPECT_TRUE(row.shares_storage(m));
  EXPECT_EQ(values(row), (std::vector<double>{5, 6}));
  row.fill_(0.5);
  EXPECT_EQ(values(m)[5], 0.5);
  EXPECT_EQ(values(m)[6], 0.5);
  EXPECT_EQ(values(m)[7], 7);
  // Shape [1, 1, n] is a single row as well.
  Tensor r3 = Tensor::arange(5, DType::f32).reshape({1, 1, 5}).narrow(4, 1);
  EXPECT_EQ(r3.shape(), (Shape{1, 1, 1}));
  EXPECT_EQ(values(r3), std::vector<double>{4});
}

TEST(Tensor, NarrowOfManyRowsCopies) {
  Tensor t = Tensor::arange(24, DType::f32).reshape({2, 3, 4});
  Tensor n = t.narrow(1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 3, 2}));
  EXPECT_FALSE(n.shares_storage(t));
  EXPECT_EQ(values(n), (std::vector<double>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}));
  // The copy is independent of its source.
  n.fill_(0);
  EXPECT_EQ(values(t)[1], 1);
  // Narrow of a (multi-row) slice view reads from the view's offset.
  Tensor s = Tensor::arange(12, DType::i64).reshape({4, 3}).slice(1, 3);
  EXPECT_EQ(s.narrow(0, 2).to_vector<int64_t>(), (std::vector<int64_t>{3, 4, 6, 7}));
  EXPECT_EQ(s.narrow(2, 1).to_vector<int64_t>(), (std::vector<int64_t>{5, 8}));
  EXPECT_EQ(s.narrow(1, 0).numel(), 0);
  EXPECT_THROW(s.narrow(2, 2), Error);
  EXPECT_THROW(s.narrow(-1, 1), Error);
  EXPECT_THROW(s.narrow(0, -1), Error);
}

TEST(Tensor, CloneIsDeep) {
  Tensor t = Tensor::from<double>({1, 2, 3, 4}, {2, 2});
  Tensor c = t.clone();
  EXPECT_FALSE(c.shares_storage(t));
  EXPECT_NE(c.raw_data(), t.raw_data());
  EXPECT_EQ(c.shape(), t.shape());
  EXPECT_EQ(c.dtype(), t.dtype());
  EXPECT_EQ(values(c), values(t));
  c.data<double>()[0] = -1;
  EXPECT_EQ(values(t)[0], 1);
  // Clone of a view copies only the view's elements.
  Tensor v = t.slice(1, 2).clone();
  EXPECT_EQ(v.offset(), 0);
  EXPECT_EQ(values(v), (std::vector<double>{3, 4}));
}

TEST(Tensor, CopyAndFillInPlace) {
  Tensor a = Tensor::zeros({2, 3}, DType::f64);
  Tensor b = Tensor::from<float>({1, 2, 3, 4, 5, 6});  // same numel, other shape and dtype
  void* before = a.raw_data();
  a.copy_(b);
  EXPECT_EQ(a.raw_data(), before);
  EXPECT_EQ(values(a), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  a.zero_();
  EXPECT_EQ(values(a), std::vector<double>(6, 0.0));
  // Copy into a slice writes into the parent.
  Tensor p = Tensor::zeros({3, 2}, DType::i32);
  Tensor s = p.slice(1, 2);
  s.copy_(Tensor::from<int64_t>({8, 9}));
  EXPECT_EQ(p.to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 8, 9, 0, 0}));
  EXPECT_THROW(a.copy_(Tensor::zeros({5})), Error);
}

TEST(Tensor, ToSameDtypeOrDeviceIsTheSameTensor) {
  Tensor t = Tensor::ones({3});
  EXPECT_TRUE(t.to(DType::f32).shares_storage(t));
  EXPECT_TRUE(t.to(Device::cpu()).shares_storage(t));
  EXPECT_FALSE(t.to(DType::f64).shares_storage(t));
}

// Every (from, to) pair of dtypes on values that every dtype holds exactly.
TEST(Tensor, ToEveryDtypePairExactValues) {
  const std::vector<double> exact{0, 1, 2, 3, 7, 100, 255, 256};
  for (DType from : kAllDTypes)
    for (DType to : kAllDTypes) {
      Tensor src = Tensor::from(exact).to(from);
      Tensor dst = src.to(to);
      EXPECT_EQ(dst.dtype(), to);
      EXPECT_EQ(dst.shape(), src.shape());
      EXPECT_EQ(values(dst), exact) << dtype_name(from) << " -> " << dtype_name(to);
      // Shape is kept for multi-dim tensors too.
      Tensor m = Tensor::from(exact, {2, 4}).to(from).to(to);
      EXPECT_EQ(m.shape(), (Shape{2, 4}));
    }
}

TEST(Tensor, ToSignedValuesBetweenSignedDtypes) {
  const std::vector<double> v{-128, -3, -1, 0, 5, 64};
  for (DType from : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64})
    for (DType to : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64})
      EXPECT_EQ(values(Tensor::from(v).to(from).to(to)), v) << dtype_name(from) << " -> " << dtype_name(to);
}

TEST(Tensor, ToFloatToIntTruncatesTowardZero) {
  Tensor f = Tensor::from<double>({2.7, -2.7, 0.5, -0.5, 3.0});
  for (DType from : {DType::f32, DType::f64}) {
    EXPECT_EQ(f.to(from).to(DType::i32).to_vector<int32_t>(), (std::vector<int32_t>{2, -2, 0, 0, 3}));
    EXPECT_EQ(f.to(from).to(DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{2, -2, 0, 0, 3}));
  }
  EXPECT_EQ(Tensor::from<double>({2.7, 65535.0, 0.9}).to(DType::u16).to_vector<uint16_t>(),
            (std::vector<uint16_t>{2, 65535, 0}));
  EXPECT_EQ(Tensor::from<float>({1.5f, 300.0f}).to(DType::bf16).to(DType::i32).to_vector<int32_t>(),
            (std::vector<int32_t>{1, 300}));
}

TEST(Tensor, ToLargeIntegersAndFloatRounding) {
  // i64 beyond 2^53 through f64 and f32; i32 extremes are exact in f64.
  int64_t big = (int64_t(1) << 53) + 1;
  EXPECT_EQ(Tensor::from<int64_t>({big}).to(DType::f64).item<double>(), 9007199254740992.0);
  EXPECT_EQ(Tensor::from<int64_t>({16777217}).to(DType::f32).item<float>(), 16777216.0f);
  int32_t lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
  EXPECT_EQ(Tensor::from<int32_t>({lo, hi}).to(DType::f64).to_vector<double>(),
            (std::vector<double>{static_cast<double>(lo), static_cast<double>(hi)}));
  EXPECT_EQ(Tensor::from<int32_t>({lo, hi}).to(DType::i64).to(DType::i32).to_vector<int32_t>(),
            (std::vector<int32_t>{lo, hi}));
  EXPECT_EQ(Tensor::from<uint16_t>({65535}).to(DType::i64).item<int64_t>(), 65535);
  EXPECT_EQ(Tensor::from<uint16_t>({65535}).to(DType::f32).item<float>(), 65535.0f);
  // bf16 keeps 8 significant bits: 257 rounds to 256 (tie to even), 65535 to 65536.
  EXPECT_EQ(Tensor::from<int32_t>({257, 259, 65535}).to(DType::bf16).to_vector<float>(),
            (std::vector<float>{256.0f, 260.0f, 65536.0f}));
  // f64 -> f32 rounds to nearest.
  EXPECT_EQ(Tensor::from<double>({0.1}).to(DType::f32).item<float>(), 0.1f);
  EXPECT_EQ(Tensor::from<double>({1.0 / 3.0}).to(DType::f32).to(DType::f64).item<double>(),
            static_cast<double>(1.0f / 3.0f));
  // Inf and NaN survive float <-> float conversions.
  double inf = std::numeric_limits<double>::infinity();
  for (DType a : {DType::f32, DType::f64, DType::bf16})
    for (DType b : {DType::f32, DType::f64, DType::bf16}) {
      std::vector<double> v = values(Tensor::from<double>({inf, -inf, NAN}).to(a).to(b));
      EXPECT_EQ(v[0], inf);
      EXPECT_EQ(v[1], -inf);
      EXPECT_TRUE(std::isnan(v[2])) << dtype_name(a) << " -> " << dtype_name(b);
    }
}

TEST(Tensor, ToVectorAndItemConvert) {
  Tensor t = Tensor::from<float>({1.25f, -2.0f});
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{1.25, -2.0}));
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{1, -2}));
  EXPECT_EQ(t.to_vector<bf16>()[0].bits, bf16(1.25f).bits);
  EXPECT_EQ(t.slice(1, 2).item<float>(), -2.0f);
  EXPECT_EQ(Tensor::full({1, 1, 1}, 9, DType::u16).item<int32_t>(), 9);
  EXPECT_THROW(t.item<float>(), Error);  // two elements
  EXPECT_THROW(Tensor::empty({0}).item<float>(), Error);
}

TEST(Tensor, Str) {
  EXPECT_EQ(Tensor::empty({2, 3}).str(), "f32[2, 3] cpu");
  EXPECT_EQ(Tensor::empty({4}, DType::i64).str(), "i64[4] cpu");
  EXPECT_EQ(Tensor::empty({1, 0, 2}, DType::bf16).str(), "bf16[1, 0, 2] cpu");
  EXPECT_EQ(Tensor::empty({}, DType::u16).str(), "u16[] cpu");
  EXPECT_EQ(Tensor::empty({3}, DType::f64).str(), "f64[3] cpu");
  EXPECT_EQ(Tensor::empty({3}, DType::i32).str(), "i32[3] cpu");
}

TEST(Tensor, CopyingTheHandleSharesData) {
  Tensor a = Tensor::zeros({2});
  Tensor b = a;  // handle copy
  b.fill_(3);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{3, 3}));
  EXPECT_TRUE(a.shares_storage(b));
  // The storage lives as long as any handle does.
  Tensor view;
  {
    Tensor owner = Tensor::arange(4, DType::f64);
    view = owner.slice(2, 4);
  }
  EXPECT_EQ(values(view), (std::vector<double>{2, 3}));
  EXPECT_EQ(view.storage().use_count(), 1);
}

TEST(Shape, HelpersAndDevice) {
  EXPECT_EQ(numel_of({}), 1);
  EXPECT_EQ(numel_of({2, 0, 3}), 0);
  EXPECT_EQ(numel_of({2, 3, 4}), 24);
  EXPECT_EQ(shape_str({}), "[]");
  EXPECT_EQ(shape_str({2, 3}), "[2, 3]");
  EXPECT_EQ(wrap_dim(-1, 3, "t"), 2);
  EXPECT_EQ(wrap_dim(0, 3, "t"), 0);
  EXPECT_THROW(wrap_dim(3, 3, "t"), Error);
  EXPECT_THROW(wrap_dim(-4, 3, "t"), Error);
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda"), Device::cuda(0));
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::cuda(2).str(), "cuda:2");
  EXPECT_EQ(Device::cpu().str(), "cpu");
  EXPECT_TRUE(Device::cpu().is_cpu());
  EXPECT_TRUE(Device::cuda().is_cuda());
}
