#include "layers/attention/options.h"

#include "core/error.h"

namespace attnlab {

PosKind parse_pos_kind(const std::string& name) {
  if (name == "rope") return PosKind::rope;
  if (name == "nope" || name == "none") return PosKind::nope;
  throw Error(detail::cat("attention: unknown pos '", name, "' (expected rope or nope)"));
}

MaskKind parse_mask_kind(const std::string& name) {
  if (name == "causal") return MaskKind::causal;
  if (name == "window") return MaskKind::window;
  if (name == "none") return MaskKind::none;
  throw Error(detail::cat("attention: unknown mask '", name, "' (expected causal, window or none)"));
}

const char* pos_kind_name(PosKind k) { return k == PosKind::rope ? "rope" : "nope"; }

const char* mask_kind_name(MaskKind k) {
  switch (k) {
    case MaskKind::causal: return "causal";
    case MaskKind::window: return "window";
    case MaskKind::none: return "none";
  }
  return "?";
}

AttnOptions resolve_attn_options(AttnOptions o, int64_t d_model, int64_t model_n_head) {
  if (o.n_head == 0) o.n_head = model_n_head;
  ATTNLAB_CHECK(o.n_head > 0, "attention: n_head must be positive, got ", o.n_head);
  if (o.n_kv_head == 0) o.n_kv_head = o.n_head;
  ATTNLAB_CHECK(o.n_kv_head > 0 && o.n_head % o.n_kv_head == 0, "attention: n_kv_head = ", o.n_kv_head,
                " must divide n_head = ", o.n_head);
  if (o.d_head == 0) {
    ATTNLAB_CHECK(d_model % o.n_head == 0, "attention: d_model = ", d_model, " is not divisible by n_head = ",
                  o.n_head, " (set d_head explicitly)");
    o.d_head = d_model / o.n_head;
  }
  ATTNLAB_CHECK(o.d_head > 0, "attention: d_head must be positive, got ", o.d_head);
  if (o.pos == PosKind::rope) {
    ATTNLAB_CHECK(o.rope_theta > 0, "attention: rope_theta must be positive, got ", o.rope_theta);
    ATTNLAB_CHECK(o.rope_fraction > 0 && o.rope_fraction <= 1, "attention: rope_fraction must be in (0, 1], got ",
                  o.rope_fraction);
    ATTNLAB_CHECK(rope_rotated_dims(o) >= 2, "attention: rope_fraction = ", o.rope_fraction, " of d_head = ",
                  o.d_head, " rotates fewer than 2 dims");
  }
  if (o.mask == MaskKind::window)
    ATTNLAB_CHECK(o.window > 0, "attention: mask = window needs window > 0, got ", o.window);
  return o;
}

int64_t rope_rotated_dims(const AttnOptions& o) {
  int64_t n = static_cast<int64_t>(o.rope_fraction * static_cast<double>(o.d_head) + 1e-9);
  return n - n % 2;
}

}  // namespace attnlab
