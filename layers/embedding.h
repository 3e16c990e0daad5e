#pragma once
#include "layers/module.h"

namespace attnlab {

// A lookup table: weight [num, dim]; ids (i32/i64, any shape) -> [..., dim].
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim);
  Var forward(const Tensor& ids) const;

  const Var& weight() const { return weight_; }
  int64_t num_embeddings() const { return num_; }
  int64_t embedding_dim() const { return dim_; }

 private:
  int64_t num_, dim_;
  Var weight_;
};

}  // namespace attnlab
