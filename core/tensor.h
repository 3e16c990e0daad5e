#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/shape.h"
#include "core/storage.h"

namespace attnlab {

// An n-dimensional array: contiguous row-major elements of one dtype, at an
// element offset into a shared Storage. Views (reshape, slice, narrow of a
// single row) share the storage; everything else makes a new tensor.
// Copying a Tensor copies the handle, not the data.
class Tensor {
 public:
  Tensor() = default;  // undefined; defined() is false

  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());
  // 0, 1, ..., n-1
  static Tensor arange(int64_t n, DType dtype = DType::i64, Device device = Device::cpu());
  // Copies host values; the dtype is T's. An empty `shape` means 1-D (scalars: Tensor::scalar).
  template <class T>
  static Tensor from(const std::vector<T>& values, Shape shape = {}, Device device = Device::cpu());
  static Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
  static Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu(); }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }
  int64_t offset() const { return offset_; }
  const StoragePtr& storage() const { return storage_; }
  bool shares_storage(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  // "f32[2, 3] cpu"
  std::string str() const;

  void* raw_data() const;
  template <class T>
  T* data() const {
    ATTNLAB_CHECK(defined() && dtype_ == dtype_v<T>, "Tensor::data<", dtype_name(dtype_v<T>),
                  ">: tensor is ", str());
    return static_cast<T*>(raw_data());
  }

  // Views. reshape accepts one -1.
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const { return reshape(shape); }
  Tensor flatten() const { return reshape({numel_}); }
  // Rows [start, end) along dim 0; a view.
  Tensor slice(int64_t start, int64_t end) const;
  // Columns [start, start+len) of the last dim: a view when there is one row, else a copy.
  Tensor narrow(int64_t start, int64_t len) const;

  // New tensors.
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor clone() const;

  // In place.
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // same numel; converts dtype, crosses devices
  Tensor& uniform_(Generator& gen, double lo = 0.0, double hi = 1.0);
  Tensor& normal_(Generator& gen, double mean = 0.0, double std = 1.0);

  // Host reads (copy to CPU when needed).
  template <class T>
  T item() const;
  template <class T>
  std::vector<T> to_vector() const;

 private:
  StoragePtr storage_;
  Shape shape_;
  int64_t numel_ = 0;
  int64_t offset_ = 0;  // in elements
  DType dtype_ = DType::f32;
};

}  // namespace attnlab
