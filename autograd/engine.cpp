#include <unordered_map>

#include "autograd/var.h"
#include "core/ops.h"

namespace attnlab {

namespace {
thread_local bool g_grad_enabled = true;

// Leaves own their gradient buffer: the first contribution is copied (a backward
// function may hand the same tensor to two inputs), later ones are added in place.
void accumulate_leaf(VarImpl* leaf, const Tensor& g) {
  if (!leaf->grad.defined()) leaf->grad = g.clone();
  else ops::axpy(leaf->grad, 1.0, g);
}

void fire_hooks(VarImpl* leaf) {
  Var v(std::shared_ptr<VarImpl>(std::shared_ptr<VarImpl>{}, leaf));  // non-owning alias
  for (auto& hook : leaf->grad_ready_hooks) hook(v);
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Var::Var(Tensor data, bool requires_grad) : impl_(std::make_shared<VarImpl>()) {
  impl_->data = std::move(data);
  impl_->requires_grad = requires_grad;
}

void Var::zero_grad() {
  if (impl_->grad.defined()) impl_->grad.zero_();
  else if (impl_->requires_grad) impl_->grad = Tensor::zeros_like(impl_->data);
}

Var make_result(Tensor out, const char* name, std::vector<Var> inputs, BackwardFn backward) {
  bool needs = false;
  if (g_grad_enabled)
    for (const Var& v : inputs) needs = needs || v.requires_grad();
  Var result(std::move(out), needs);
  if (needs) {
    auto node = std::make_shared<Node>();
    node->name = name;
    node->inputs = std::move(inputs);
    node->backward = std::move(backward);
    result.impl()->grad_fn = std::move(node);
  }
  return result;
}

void Var::backward(const Tensor& grad, bool retain_graph) const {
  ATTNLAB_CHECK(requires_grad(), "backward: this Var does not require grad (no input needs a gradient)");
  Tensor seed = grad;
  if (!seed.defined()) {
    ATTNLAB_CHECK(numel() == 1, "backward: a gradient is needed for non-scalar output ", data().str());
    seed = Tensor::ones(shape(), dtype(), device());
  }
  ATTNLAB_CHECK(seed.shape() == shape(), "backward: gradient ", seed.str(), " does not match output ",
                data().str());
  if (is_leaf()) {
    accumulate_leaf(impl_.get(), seed);
    fire_hooks(impl_.get());
    return;
  }

  // Count, for every node and leaf, how many edges of the graph lead into it.
  std::unordered_map<Node*, int> node_deps;
  std::unordered_map<VarImpl*, int> leaf_deps;
  std::vector<Node*> stack{grad_fn().get()};
  node_deps[grad_fn().get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    ATTNLAB_CHECK(n->backward, "backward: the graph through '", n->name,
                  "' was already freed by an earlier backward (pass retain_graph=true to keep it)");
    for (const Var& in : n->inputs) {
      if (!in.requires_grad()) continue;
      if (in.is_leaf()) {
        leaf_deps[in.impl()]++;
      } else if (node_deps[in.grad_fn().get()]++ == 0) {
        stack.push_back(in.grad_fn().get());
      }
    }
  }

  // Process nodes whose every consumer has delivered its gradient.
  std::unordered_map<Node*, Tensor> pending{{grad_fn().get(), seed}};
  std::vector<std::shared_ptr<Node>> ready{grad_fn()};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor g = std::move(pending[node.get()]);
    pending.erase(node.get());
    std::vector<Tensor> grads = node->backward(g);
    ATTNLAB_CHECK(grads.size() == node->inputs.size(), "backward: '", node->name, "' returned ",
                  grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Var& in = node->inputs[i];
      if (!in.requires_grad()) continue;
      const Tensor& gi = grads[i];
      if (in.is_leaf()) {
        VarImpl* leaf = in.impl();
        if (gi.defined()) accumulate_leaf(leaf, gi);
        if (--leaf_deps[leaf] == 0) fire_hooks(leaf);
        continue;
      }
      Node* next = in.grad_fn().get();
      if (gi.defined()) {
        auto it = pending.find(next);
        if (it == pending.end()) pending.emplace(next, gi);
        else it->second = ops::add(it->second, gi);
      }
      if (--node_deps[next] == 0) {
        if (!pending.count(next))  // every path into it was cut: a zero gradient
          pending.emplace(next, Tensor::zeros(in.shape(), in.dtype(), in.device()));
        ready.push_back(in.grad_fn());
      }
    }
    if (!retain_graph) node->release();
  }
}

}  // namespace attnlab
