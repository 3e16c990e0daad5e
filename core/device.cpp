#include "core/device.h"

#include "core/error.h"

namespace attnlab {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 &&
      s.find_first_not_of("0123456789", 5) == std::string::npos)
    return cuda(std::stoi(s.substr(5)));
  throw Error("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

#ifndef ATTNLAB_HAS_CUDA
int cuda_device_count() { return 0; }
#endif
bool cuda_available() { return cuda_device_count() > 0; }

}  // namespace attnlab
