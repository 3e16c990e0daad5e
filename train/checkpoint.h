#pragma once
// Checkpoints in HDF5 (DESIGN.md "Interfaces"): one dataset per parameter named
// by its module path, optimizer state under optim/<param>/<state>, and meta/
// attributes (step, RNG state, data position, the resolved config text).
// A PyTorch model with the same parameter names loads it with h5py alone.
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"

namespace attnlab {

struct Checkpoint {
  std::map<std::string, Tensor> params;
  std::map<std::string, std::map<std::string, Tensor>> optim;  // param -> state name -> tensor
  std::map<std::string, int64_t> meta;                          // step, rng offsets, loader position...
  std::string config;                                           // resolved INI text
};

// Writes to `path`.tmp and renames, so a crash never leaves a torn checkpoint.
void save_checkpoint(const std::string& path, const Checkpoint& ckpt);
// Throws attnlab::Error naming the file when it is missing, not HDF5, or lacks meta/.
Checkpoint load_checkpoint(const std::string& path, bool with_optim = true);

}  // namespace attnlab
