#pragma once
#include <cstddef>
#include <memory>

#include "core/device.h"

namespace attnlab {

// A buffer of bytes on one device, borrowed from that device's caching
// allocator and given back when the last Tensor viewing it goes away.
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

using StoragePtr = std::shared_ptr<Storage>;

}  // namespace attnlab
