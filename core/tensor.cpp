#include "core/tensor.h"

#include <cstring>

#include "core/ops.h"
#include "core/philox.h"

namespace attnlab {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    ATTNLAB_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.numel_ = numel_of(shape);
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(t.nbytes(), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  ops::fill(t, value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  ATTNLAB_CHECK(n >= 0, "Tensor::arange: negative length ", n);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<double>(i);
  return from(v).to(dtype).to(device);
}

template <class T>
Tensor Tensor::from(const std::vector<T>& values, Shape shape, Device device) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  ATTNLAB_CHECK(numel_of(shape) == static_cast<int64_t>(values.size()), "Tensor::from: ",
                values.size(), " values do not fill shape ", shape_str(shape));
  Tensor host = empty(shape, dtype_v<T>);
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), host.nbytes());
  return device.is_cpu() ? host : host.to(device);
}

template Tensor Tensor::from(const std::vector<float>&, Shape, Device);
template Tensor Tensor::from(const std::vector<double>&, Shape, Device);
template Tensor Tensor::from(const std::vector<bf16>&, Shape, Device);
template Tensor Tensor::from(const std::vector<int32_t>&, Shape, Device);
template Tensor Tensor::from(const std::vector<int64_t>&, Shape, Device);
template Tensor Tensor::from(const std::vector<uint16_t>&, Shape, Device);

int64_t Tensor::size(int64_t d) const { return shape_[static_cast<size_t>(wrap_dim(d, dim(), "Tensor::size"))]; }

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device().str();
}

void* Tensor::raw_data() const {
  ATTNLAB_CHECK(defined(), "Tensor::raw_data: undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape s = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      ATTNLAB_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      ATTNLAB_CHECK(s[i] >= 0, "reshape: bad size in ", shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    ATTNLAB_CHECK(known > 0 && numel_ % known == 0, "reshape: cannot view ", str(), " as ",
                  shape_str(shape));
    s[static_cast<size_t>(infer)] = numel_ / known;
  }
  ATTNLAB_CHECK(numel_of(s) == numel_, "reshape: cannot view ", str(), " as ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = s;
  return t;
}

Tensor Tensor::slice(int64_t start, int64_t end) const {
  ATTNLAB_CHECK(dim() >= 1, "slice: needs at least 1 dim, got ", str());
  ATTNLAB_CHECK(0 <= start && start <= end && end <= shape_[0], "slice: rows [", start, ", ", end,
                ") out of range for ", str());
  Tensor t = *this;
  int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  t.shape_[0] = end - start;
  t.numel_ = numel_of(t.shape_);
  t.offset_ = offset_ + start * row;
  return t;
}

Tensor Tensor::narrow(int64_t start, int64_t len) const {
  ATTNLAB_CHECK(dim() >= 1, "narrow: needs at least 1 dim, got ", str());
  int64_t n = shape_.back();
  ATTNLAB_CHECK(0 <= start && len >= 0 && start + len <= n, "narrow: columns [", start, ", ",
                start + len, ") out of range for ", str());
  if (numel_ == n) {  // a single row: the columns are contiguous
    Tensor t = *this;
    t.shape_.back() = len;
    t.numel_ = len;
    t.offset_ = offset_ + start;
    return t;
  }
  return ops::split(*this, {start, len, n - start - len}, -1)[1];
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor t = empty(shape_, dtype_, device);
  ops::copy(t, *this);
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  ops::copy(t, *this);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty_like(*this);
  ops::copy(t, *this);
  return t;
}

Tensor& Tensor::fill_(double value) {
  ops::fill(*this, value);
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  ops::copy(*this, src);
  return *this;
}

// The generator advances only once the fill has succeeded.
Tensor& Tensor::uniform_(Generator& gen, double lo, double hi) {
  ops::uniform(*this, gen.seed(), gen.offset(), lo, hi);
  gen.advance(philox::calls_for(static_cast<uint64_t>(numel_)));
  return *this;
}

Tensor& Tensor::normal_(Generator& gen, double mean, double std) {
  ops::normal(*this, gen.seed(), gen.offset(), mean, std);
  gen.advance(philox::calls_for(static_cast<uint64_t>(numel_)));
  return *this;
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = to(Device::cpu()).to(dtype_v<T>);
  std::vector<T> out(static_cast<size_t>(numel_));
  if (numel_) std::memcpy(out.data(), host.raw_data(), host.nbytes());
  return out;
}

template <class T>
T Tensor::item() const {
  ATTNLAB_CHECK(numel_ == 1, "item: tensor ", str(), " has ", numel_, " elements, expected 1");
  return to_vector<T>()[0];
}

#define ATTNLAB_INSTANTIATE_READS(T)              \
  template std::vector<T> Tensor::to_vector() const; \
  template T Tensor::item() const;
ATTNLAB_INSTANTIATE_READS(float)
ATTNLAB_INSTANTIATE_READS(double)
ATTNLAB_INSTANTIATE_READS(bf16)
ATTNLAB_INSTANTIATE_READS(int32_t)
ATTNLAB_INSTANTIATE_READS(int64_t)
ATTNLAB_INSTANTIATE_READS(uint16_t)
#undef ATTNLAB_INSTANTIATE_READS

}  // namespace attnlab
