#include "optim/device_table.h"

namespace attnlab {

const Tensor& DeviceTableCache::words(const cuda::MultiTensorTable& table, Device device) {
  if (!words_.defined() || words_.device() != device || host_ != table.words) {
    host_ = table.words;
    words_ = Tensor::from(host_, {static_cast<int64_t>(host_.size())}, device);
    ++uploads_;
  }
  return words_;
}

}  // namespace attnlab
