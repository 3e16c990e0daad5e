#pragma once
// Reverse-mode autograd: a Var is a tensor plus its gradient and the Node that
// produced it. Backward walks the recorded graph in dependency order.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace attnlab {

struct Node;
class Var;

// Maps the gradient of a node's output to gradients of its inputs (undefined
// where an input needs none). Holds the tensors saved for backward; dropping
// the function frees them.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;
using GradReadyHook = std::function<void(Var&)>;

struct VarImpl {
  Tensor data;
  Tensor grad;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  std::vector<GradReadyHook> grad_ready_hooks;
};

class Var {
 public:
  Var() = default;
  explicit Var(Tensor data, bool requires_grad = false);
  explicit Var(std::shared_ptr<VarImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Tensor& data() const { return impl_->data; }
  Tensor& data() { return impl_->data; }
  // Accumulated gradient; undefined until a backward reaches this leaf.
  const Tensor& grad() const { return impl_->grad; }
  Tensor& grad() { return impl_->grad; }
  // Fills the gradient buffer with zeros, creating it on first use for a Var
  // that requires grad: zeroing before the first step makes that step hold the
  // same buffers as every later one, so warm-up is a single step.
  void zero_grad();
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool r) { impl_->requires_grad = r; }
  bool is_leaf() const { return !impl_->grad_fn; }
  const std::shared_ptr<Node>& grad_fn() const { return impl_->grad_fn; }
  VarImpl* impl() const { return impl_.get(); }

  // Runs backward from this Var. `grad` defaults to 1 for a single-element Var.
  // The graph's saved tensors are freed afterwards unless retain_graph.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  // Called once per backward, when this leaf's gradient is complete (DDP uses it
  // to start all-reducing a bucket while the rest of backward runs).
  void add_grad_ready_hook(GradReadyHook hook) { impl_->grad_ready_hooks.push_back(std::move(hook)); }
  // The same data, cut from the graph.
  Var detach() const { return Var(impl_->data, false); }

  const Shape& shape() const { return impl_->data.shape(); }
  int64_t dim() const { return impl_->data.dim(); }
  int64_t size(int64_t d) const { return impl_->data.size(d); }
  int64_t numel() const { return impl_->data.numel(); }
  DType dtype() const { return impl_->data.dtype(); }
  Device device() const { return impl_->data.device(); }

 private:
  std::shared_ptr<VarImpl> impl_;
};

struct Node {
  const char* name = "";
  std::vector<Var> inputs;
  BackwardFn backward;
  // Frees saved tensors and the links to the inputs.
  void release() {
    inputs.clear();
    backward = nullptr;
  }
};

// Gradient recording is on unless a NoGradGuard is alive on this thread.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// The output of a differentiable function: records a Node when grad is enabled
// and any input requires grad; otherwise a plain Var (and `backward` is dropped).
Var make_result(Tensor out, const char* name, std::vector<Var> inputs, BackwardFn backward);

}  // namespace attnlab
