#pragma once
// The device copy of a multi-tensor table (core/cuda/multi_tensor.h), kept
// while the table is unchanged: an optimizer step over the same parameters,
// gradients and state buffers reuses the words already on the device, so a
// steady-state step uploads nothing and allocates nothing.
#include <cstdint>

#include "core/cuda/multi_tensor.h"
#include "core/tensor.h"

namespace attnlab {

class DeviceTableCache {
 public:
  // The i64 words of `table` on `device`, copied there only when they differ
  // from the last call's (or the device does).
  const Tensor& words(const cuda::MultiTensorTable& table, Device device);
  // How many times words() copied a table (tests).
  int64_t uploads() const { return uploads_; }

 private:
  std::vector<int64_t> host_;
  Tensor words_;
  int64_t uploads_ = 0;
};

}  // namespace attnlab
