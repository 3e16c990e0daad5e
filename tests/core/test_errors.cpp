// Bad input gets one clear attnlab::Error naming the op and the shapes or
// dtypes involved (DESIGN principle 7).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "autograd/functions.h"
#include "core/ops.h"
#include "core/test_helpers.h"

using namespace attnlab;
using attnlab::testing::throws_error;

namespace {
Tensor f32(const Shape& s) { return Tensor::zeros(s, DType::f32); }
Tensor f64(const Shape& s) { return Tensor::zeros(s, DType::f64); }
Tensor i64(const Shape& s) { return Tensor::zeros(s, DType::i64); }
}  // namespace

TEST(Errors, MatmulShapes) {
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({2, 3}), f32({4, 5})); }, {"matmul", "[2, 3]", "[4, 5]", "K=3", "K=4"}));
  EXPECT_NO_THROW(ops::matmul(f32({2, 3}), f32({2, 3}), false, true));  // valid with trans_b
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({3, 2}), f32({3, 2}), false, false); },
                           {"matmul", "inner dims", "[3, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({2, 3, 4}), f32({3, 4, 5})); },
                           {"matmul", "batch", "[2, 3, 4]", "[3, 4, 5]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({3, 4}), f32({2, 4, 5})); }, {"matmul", "batch", "[3, 4]", "[2, 4, 5]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({3}), f32({3, 2})); }, {"matmul", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(f32({2, 3}), f64({3, 2})); }, {"matmul", "f32[2, 3]", "f64[3, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(i64({2, 3}), i64({3, 2})); }, {"matmul", "i64[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::matmul(Tensor(), f32({3, 2})); }, {"matmul", "undefined"}));
  // The differentiable wrapper refuses a transposed batched a with a shared 2-D b.
  EXPECT_TRUE(throws_error([] { ag::matmul(Var(f32({2, 3, 4})), Var(f32({3, 5})), true, false); },
                           {"matmul", "[2, 3, 4]", "[3, 5]"}));
}

TEST(Errors, ElementwiseShapesAndDtypes) {
  EXPECT_TRUE(throws_error([] { ops::add(f32({2, 3}), f32({3, 2})); }, {"add", "[2, 3]", "[3, 2]", "broadcast"}));
  EXPECT_TRUE(throws_error([] { ops::mul(f32({4}), f32({3})); }, {"mul", "[4]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::sub(f32({2}), f64({2})); }, {"sub", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::div(i64({2}), i64({2})); }, {"div", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::add(f32({2}), Tensor()); }, {"add", "undefined"}));
  EXPECT_TRUE(throws_error([] { ops::unary(UnaryOp::relu, i64({3})); }, {"relu", "i64[3]"}));
  EXPECT_TRUE(throws_error([] { ops::unary(UnaryOp::gelu_tanh, Tensor::zeros({3}, DType::bf16)); },
                           {"gelu_tanh", "bf16"}));
  EXPECT_TRUE(throws_error([] { ops::unary(UnaryOp::exp, Tensor::zeros({3}, DType::u16)); }, {"exp", "u16"}));
  EXPECT_TRUE(throws_error([] { ops::unary(UnaryOp::tanh, Tensor()); }, {"tanh", "undefined"}));
  EXPECT_TRUE(throws_error([] { ops::unary_backward(UnaryOp::sqrt, f32({3}), f32({4})); }, {"sqrt", "[3]", "[4]"}));
  EXPECT_TRUE(throws_error([] { ops::unary_backward(UnaryOp::sqrt, f32({3}), f64({3})); }, {"sqrt", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::sum_to(f32({2, 3}), {4}); }, {"sum_to", "[4]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::sum_to(f32({3}), {2, 3}); }, {"sum_to", "[2, 3]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::scale(i64({3}), 2.0); }, {"scale", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::add_scalar(Tensor::zeros({3}, DType::i32), 2.0); }, {"add_scalar", "i32"}));
  EXPECT_TRUE(throws_error([] {
    Tensor y = f32({3});
    ops::axpy(y, 1.0, f32({4}));
  }, {"axpy", "[3]", "[4]"}));
  EXPECT_TRUE(throws_error([] {
    Tensor y = f32({3});
    ops::axpy(y, 1.0, f64({3}));
  }, {"axpy", "f32", "f64"}));
}

TEST(Errors, Reductions) {
  EXPECT_TRUE(throws_error([] { ops::sum_last(f32({})); }, {"sum_last", "[]"}));
  EXPECT_TRUE(throws_error([] { ops::mean_last(f32({3, 0})); }, {"mean_last", "[3, 0]"}));
  EXPECT_TRUE(throws_error([] { ops::max_last(f32({3, 0})); }, {"max_last", "[3, 0]"}));
  EXPECT_TRUE(throws_error([] { ops::max_last(i64({3})); }, {"max_last", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::mean_all(f32({0, 2})); }, {"mean_all", "[0, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::max_all(f32({0})); }, {"max_all", "[0]"}));
  EXPECT_TRUE(throws_error([] { ops::max_all(Tensor()); }, {"max_all"}));
  EXPECT_TRUE(throws_error([] { ops::sum_all(Tensor::zeros({2}, DType::i32)); }, {"sum_all", "i32"}));
  EXPECT_TRUE(throws_error([] { ops::scatter_last(f32({2}), f32({2}), 3); }, {"scatter_last", "f32[2]"}));
  EXPECT_TRUE(throws_error([] { ops::scatter_last(i64({2}), f32({3}), 3); }, {"scatter_last", "[2]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::scatter_last(Tensor::from<int64_t>({0, 5}), f32({2}), 5); },
                           {"scatter_last", "5", "[0, 5)"}));
  EXPECT_TRUE(throws_error([] { ops::scatter_last(Tensor::from<int32_t>({-1}), f32({1}), 5); },
                           {"scatter_last", "-1"}));
}

TEST(Errors, SoftmaxAndNorms) {
  EXPECT_TRUE(throws_error([] { ops::softmax(Tensor::zeros({2, 3}, DType::i32)); }, {"softmax", "i32[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::log_softmax(f32({})); }, {"log_softmax", "[]"}));
  EXPECT_TRUE(throws_error([] { ops::softmax_backward(f32({2, 3}), f32({3, 2})); },
                           {"softmax_backward", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::log_softmax_backward(f32({2, 3}), f64({2, 3})); },
                           {"log_softmax_backward", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(f32({2, 3}), f32({4}), f32({4}), 1e-5); },
                           {"layer_norm", "weight", "[4]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(f32({2, 3}), f32({1, 3}), Tensor(), 1e-5); },
                           {"layer_norm", "[1, 3]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(f32({2, 3}), f32({3}), f32({4}), 1e-5); },
                           {"layer_norm", "[3]", "[4]"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(f32({2, 3}), f64({3}), Tensor(), 1e-5); },
                           {"layer_norm", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(f32({2, 3}), f32({3}), f64({3}), 1e-5); },
                           {"layer_norm", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::layer_norm(i64({2, 3}), f32({3}), Tensor(), 1e-5); }, {"layer_norm", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::rms_norm(f32({2, 3}), f32({2}), 1e-5); }, {"rms_norm", "[2]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::rms_norm(f32({}), f32({1}), 1e-5); }, {"rms_norm", "[]"}));
  EXPECT_TRUE(throws_error([] {
    Tensor x = f32({2, 3}), w = f32({3});
    ops::NormOut fwd = ops::layer_norm(x, w, Tensor(), 1e-5);
    ops::layer_norm_backward(x, w, fwd, f32({3, 2}), false);
  }, {"layer_norm_backward", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(throws_error([] {
    Tensor x = f32({2, 3}), w = f32({3});
    ops::NormOut fwd = ops::rms_norm(x, w, 1e-5);
    ops::rms_norm_backward(x, w, fwd, f32({2, 4}));
  }, {"rms_norm_backward", "[2, 3]", "[2, 4]"}));
}

TEST(Errors, Embedding) {
  Tensor w = f32({5, 4});
  EXPECT_TRUE(throws_error([&] { ops::embedding(w, f32({3})); }, {"embedding", "ids", "f32[3]"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(w, Tensor::zeros({3}, DType::u16)); }, {"embedding", "u16"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(f32({5}), i64({3})); }, {"embedding", "[5]"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(Tensor::zeros({5, 4}, DType::i32), i64({3})); },
                           {"embedding", "i32[5, 4]"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(w, Tensor::from<int64_t>({1, 7})); },
                           {"embedding", "7", "[0, 5)"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(w, Tensor::from<int32_t>({-1})); }, {"embedding", "-1"}));
  EXPECT_TRUE(throws_error([&] { ops::embedding(w, Tensor()); }, {"embedding", "undefined"}));
  EXPECT_TRUE(throws_error([] { ops::embedding_backward(i64({2, 3}), f32({2, 4, 5}), 10); },
                           {"embedding_backward", "[2, 4, 5]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::embedding_backward(f32({2}), f32({2, 5}), 10); },
                           {"embedding_backward", "f32[2]"}));
  EXPECT_TRUE(throws_error([] { ops::embedding_backward(Tensor::from<int64_t>({3, 10}), f32({2, 5}), 10); },
                           {"embedding", "10", "[0, 10)"}));
}

TEST(Errors, CrossEntropy) {
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({4, 5}), i64({3})); },
                           {"cross_entropy", "[4, 5]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({2, 4, 5}), i64({2, 4})); },
                           {"cross_entropy", "[2, 4, 5]", "[2, 4]"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({4, 5}), i64({4, 1})); }, {"cross_entropy", "[4, 1]"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({4, 5}), f32({4})); }, {"cross_entropy", "targets", "f32[4]"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(i64({4, 5}), i64({4})); }, {"cross_entropy", "logits", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({2, 5}), Tensor::from<int64_t>({1, 9})); },
                           {"cross_entropy", "target 9", "[0, 5)"}));
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({2, 5}), Tensor::from<int32_t>({-1, 0})); },
                           {"cross_entropy", "-1"}));
  // The check happens whether or not the gradient is requested.
  EXPECT_TRUE(throws_error([] { ops::cross_entropy(f32({2, 5}), Tensor::from<int64_t>({5, 0}), -100, false); },
                           {"cross_entropy", "5"}));
}

TEST(Errors, Layout) {
  EXPECT_TRUE(throws_error([] { ops::concat({f32({2, 3}), f32({3, 3})}, 1); }, {"concat", "[3, 3]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::concat({f32({2, 3}), f32({2, 3, 1})}, 0); }, {"concat", "[2, 3, 1]"}));
  EXPECT_TRUE(throws_error([] { ops::concat({f32({2, 3}), f64({2, 3})}, 0); }, {"concat", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::concat({}, 0); }, {"concat"}));
  EXPECT_TRUE(throws_error([] { ops::concat({f32({2, 3}), Tensor()}, 0); }, {"concat", "undefined"}));
  EXPECT_TRUE(throws_error([] { ops::concat({f32({2, 3})}, 2); }, {"concat", "dim 2"}));
  EXPECT_TRUE(throws_error([] { ops::split(f32({4, 2}), {2, 3}, 0); }, {"split", "5", "[4, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::split(f32({4, 2}), {5, -1}, 0); }, {"split", "-1"}));
  EXPECT_TRUE(throws_error([] { ops::split(f32({4, 2}), {1}, 1); }, {"split", "1", "[4, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::split(f32({4, 2}), {4}, -3); }, {"split", "dim -3"}));
  EXPECT_TRUE(throws_error([] { ops::transpose(f32({2, 3, 4}), 0, 3); }, {"transpose", "dim 3", "3-d"}));
  EXPECT_TRUE(throws_error([] { ops::transpose(f32({}), 0, 0); }, {"transpose", "0-d"}));
  EXPECT_TRUE(throws_error([] { ops::cumsum(f32({2, 3}), 2); }, {"cumsum", "dim 2"}));
  EXPECT_TRUE(throws_error([] { ops::cumsum(i64({2, 3}), 0); }, {"cumsum", "i64"}));
  EXPECT_TRUE(throws_error([] { ag::narrow(Var(f32({2, 3})), 1, 2, 2); }, {"narrow", "[2, 4)", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { ag::split(Var(f32({4, 2})), {1, 2}, 0); }, {"split", "3", "[4, 2]"}));
}

TEST(Errors, Masking) {
  EXPECT_TRUE(throws_error([] { ops::masked_fill(f32({2, 3}), i64({3, 2}), 0.0); },
                           {"masked_fill", "[2, 3]", "[3, 2]"}));
  EXPECT_TRUE(throws_error([] { ops::masked_fill(f32({3}), i64({2, 3}), 0.0); }, {"masked_fill", "[2, 3]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::masked_fill(i64({3}), i64({3}), 0.0); }, {"masked_fill", "i64"}));
  EXPECT_TRUE(throws_error([] { ops::masked_fill(f32({3}), Tensor(), 0.0); }, {"masked_fill", "undefined"}));
  EXPECT_TRUE(throws_error([] { ops::where(i64({2}), f32({3}), f32({3})); }, {"where", "[2]", "[3]"}));
  EXPECT_TRUE(throws_error([] { ops::where(i64({3}), f32({2, 3}), f32({3, 3})); }, {"where", "[2, 3]", "[3, 3]"}));
  EXPECT_TRUE(throws_error([] { ops::where(i64({3}), f32({3}), f64({3})); }, {"where", "f32", "f64"}));
  EXPECT_TRUE(throws_error([] { ops::where(Tensor(), f32({3}), f32({3})); }, {"where", "cond", "undefined"}));
}

TEST(Errors, FillsAndCopies) {
  EXPECT_TRUE(throws_error([] {
    Tensor t;
    ops::fill(t, 1.0);
  }, {"fill", "undefined"}));
  EXPECT_TRUE(throws_error([] { Tensor().fill_(1.0); }, {"fill", "undefined"}));
  EXPECT_TRUE(throws_error([] {
    Tensor d = f32({2, 3});
    ops::copy(d, f32({5}));
  }, {"copy", "[5]", "[2, 3]"}));
  EXPECT_TRUE(throws_error([] { f32({2}).copy_(Tensor()); }, {"copy", "undefined"}));
  EXPECT_TRUE(throws_error([] {
    Tensor t = i64({4});
    ops::uniform(t, 0, 0, 0.0, 1.0);
  }, {"uniform", "i64[4]"}));
  EXPECT_TRUE(throws_error([] {
    Tensor t = Tensor::zeros({4}, DType::bf16);
    Generator g(1);
    t.normal_(g);
  }, {"normal", "bf16[4]"}));
}

TEST(Errors, TensorApi) {
  EXPECT_TRUE(throws_error([] { Tensor::from<float>({1, 2, 3}, {2, 2}); }, {"Tensor::from", "3", "[2, 2]"}));
  EXPECT_TRUE(throws_error([] { Tensor::empty({2, -1}); }, {"Tensor::empty", "[2, -1]"}));
  EXPECT_TRUE(throws_error([] { Tensor::zeros({-3}); }, {"[-3]"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).reshape({4}); }, {"reshape", "[2, 3]", "[4]"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).reshape({-1, 4}); }, {"reshape", "[2, 3]", "[-1, 4]"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).reshape({-1, -1}); }, {"reshape", "-1"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).reshape({-2, -3}); }, {"reshape", "[-2, -3]"}));
  EXPECT_TRUE(throws_error([] { f32({4, 3}).slice(2, 5); }, {"slice", "[2, 5)", "[4, 3]"}));
  EXPECT_TRUE(throws_error([] { f32({4, 3}).narrow(2, 2); }, {"narrow", "[2, 4)", "[4, 3]"}));
  EXPECT_TRUE(throws_error([] { f32({2}).item<float>(); }, {"item", "[2]"}));
  EXPECT_TRUE(throws_error([] { f32({2}).data<double>(); }, {"Tensor::data<f64>", "f32[2]"}));
  EXPECT_TRUE(throws_error([] { Tensor().data<float>(); }, {"Tensor::data<f32>", "undefined"}));
  EXPECT_TRUE(throws_error([] { Tensor().raw_data(); }, {"undefined"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).size(2); }, {"Tensor::size", "dim 2"}));
  EXPECT_TRUE(throws_error([] { f32({2, 3}).size(-3); }, {"Tensor::size", "dim -3"}));
  EXPECT_TRUE(throws_error([] { Tensor().clone(); }, {"undefined"}));
  EXPECT_TRUE(throws_error([] { Tensor().to(DType::f64); }, {"undefined"}));
  EXPECT_TRUE(throws_error([] { Tensor().slice(0, 0); }, {"slice", "undefined"}));
}

TEST(Errors, ParseDeviceAndDtype) {
  EXPECT_TRUE(throws_error([] { Device::parse("gpu"); }, {"gpu", "cpu, cuda or cuda:N"}));
  EXPECT_TRUE(throws_error([] { Device::parse("cuda:"); }, {"cuda:"}));
  EXPECT_TRUE(throws_error([] { Device::parse("cuda:x"); }, {"cuda:x"}));
  EXPECT_TRUE(throws_error([] { Device::parse("cuda:-1"); }, {"cuda:-1"}));
  EXPECT_TRUE(throws_error([] { Device::parse("CPU"); }, {"CPU"}));
  EXPECT_TRUE(throws_error([] { parse_dtype("float32"); }, {"float32", "f32"}));
}

// An index too large for int is a bad device name, not a std::out_of_range.
TEST(Errors, ParseDeviceWithAHugeIndex) {
  EXPECT_TRUE(throws_error([] { Device::parse("cuda:99999999999"); }, {"cuda:99999999999"}));
}

// A negative length is reported, not left to std::vector (std::length_error).
TEST(Errors, ArangeNegativeLength) {
  EXPECT_TRUE(throws_error([] { Tensor::arange(-1); }, {"arange", "-1"}));
}

TEST(Errors, CudaTensorsWithoutACudaDevice) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  // Built without CUDA, or with CUDA but no device: creation throws attnlab::Error.
  EXPECT_THROW(Tensor::empty({2, 3}, DType::f32, Device::cuda(0)), Error);
  EXPECT_THROW(Tensor::zeros({2}, DType::f32, Device::cuda(0)), Error);
  EXPECT_THROW(Tensor::from<float>({1, 2}, {}, Device::cuda(0)), Error);
  EXPECT_THROW(f32({2}).to(Device::cuda(0)), Error);
  EXPECT_THROW(Tensor::arange(3, DType::i64, Device::cuda(1)), Error);
  EXPECT_TRUE(throws_error([] { Tensor::empty({2}, DType::f32, Device::cuda(0)); }, {"cuda"}));
}
