#include "core/device.h"

#include <charconv>

#include "core/error.h"

namespace attnlab {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  int index = 0;
  if (s.rfind("cuda:", 0) == 0) {
    auto [end, ec] = std::from_chars(s.data() + 5, s.data() + s.size(), index);
    if (ec == std::errc() && end == s.data() + s.size() && s.size() > 5 && index >= 0) return cuda(index);
  }
  throw Error("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

#ifndef ATTNLAB_HAS_CUDA
int cuda_device_count() { return 0; }
#endif
bool cuda_available() { return cuda_device_count() > 0; }

Device usable_device(const std::string& spec, const std::string& setting) {
  Device d;
  try {
    d = Device::parse(spec);
  } catch (const Error& e) {
    throw Error(setting + " = " + spec + ": " + e.what());
  }
  if (d.is_cpu()) return d;
#ifdef ATTNLAB_HAS_CUDA
  const int count = cuda_device_count();
  ATTNLAB_CHECK(count > 0, setting, " = ", spec, ": no CUDA device is available");
  ATTNLAB_CHECK(d.index < count, setting, " = ", spec, ": no such device (", count, " present)");
  return d;
#else
  throw Error(setting + " = " + spec + ": attnlab was built without CUDA (ATTNLAB_CUDA=OFF)");
#endif
}

}  // namespace attnlab
