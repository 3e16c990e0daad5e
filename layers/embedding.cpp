#include "layers/embedding.h"

#include "autograd/functions.h"

namespace attnlab {

Embedding::Embedding(int64_t num_embeddings, int64_t dim) : num_(num_embeddings), dim_(dim) {
  ATTNLAB_CHECK(num_ > 0 && dim_ > 0, "Embedding: sizes must be positive, got ", num_, " x ", dim_);
  weight_ = register_parameter("weight", Tensor::zeros({num_, dim_}));
}

Var Embedding::forward(const Tensor& ids) const { return ag::embedding(weight_, ids); }

}  // namespace attnlab
