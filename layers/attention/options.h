#pragma once
// The settings of one layer's attention, one field per axis of DESIGN.md's
// "Attention: the axes". A config layer maps an [attn.NAME] INI section onto
// this struct; zeros mean "take the model's default" until resolve() fills them.
#include <cstdint>
#include <string>

namespace attnlab {

enum class PosKind { rope, nope };
enum class MaskKind { causal, window, none };

PosKind parse_pos_kind(const std::string& name);    // rope | nope
MaskKind parse_mask_kind(const std::string& name);  // causal | window | none
const char* pos_kind_name(PosKind k);
const char* mask_kind_name(MaskKind k);

struct AttnOptions {
  std::string kind = "softmax";  // a name in the attention registry (layers/attention/registry.h)
  int64_t n_head = 0;            // 0: the model's n_head
  int64_t n_kv_head = 0;         // 0: n_head (MHA); 1: MQA; 1 < k < n_head: GQA
  int64_t d_head = 0;            // 0: d_model / n_head
  PosKind pos = PosKind::rope;
  double rope_theta = 10000.0;
  double rope_fraction = 1.0;    // share of each head's dims that rotate (partial RoPE)
  MaskKind mask = MaskKind::causal;
  int64_t window = 0;            // mask = window: a query sees itself and the window-1 keys before it
};

// Fills the defaults and checks the combination; throws attnlab::Error naming
// the field, its value and what was expected.
AttnOptions resolve_attn_options(AttnOptions o, int64_t d_model, int64_t model_n_head);

// Dims RoPE rotates per head: rope_fraction * d_head rounded down to even.
int64_t rope_rotated_dims(const AttnOptions& o);

}  // namespace attnlab
