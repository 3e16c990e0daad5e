#pragma once
#include <string>

namespace attnlab {

struct Device {
  enum class Kind : uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {Kind::cuda, index}; }
  // "cpu", "cuda", "cuda:N"; anything else is an attnlab::Error.
  static Device parse(const std::string& s);

  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

// True when attnlab was built with CUDA and a device is present.
bool cuda_available();
int cuda_device_count();

// `spec` parsed and checked usable here: a CUDA device needs a CUDA build and
// that device present. Errors name the setting, e.g. "train.device = cuda: no
// CUDA device is available".
Device usable_device(const std::string& spec, const std::string& setting);

}  // namespace attnlab
