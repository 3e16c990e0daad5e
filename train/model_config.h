#pragma once
#include "layers/gpt_config.h"
#include "train/config.h"

namespace attnlab {

// Maps the [model] and [attn.*] sections onto the model's GPTConfig. Axis values
// the model does not implement yet are errors naming the key and value.
GPTConfig gpt_config_from(const Config& cfg);

}  // namespace attnlab
