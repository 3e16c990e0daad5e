#pragma once
// Module: a named parameter tree. Parameters are leaf Vars with requires_grad;
// a module registers its parameters, buffers and child modules by name, and the
// dotted paths (`blocks.0.attn.wq.weight`) follow PyTorch's naming and layout so a
// checkpoint written from state_dict() loads into a PyTorch model by name.
// Buffers (PyTorch's persistent buffers) are state that is not trained, e.g.
// σReparam's power-iteration vectors: in state_dict(), never in parameters().
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace attnlab {

using NamedParams = std::vector<std::pair<std::string, Var>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // (dotted path, parameter) in registration order, depth first. A parameter
  // registered under two paths (weight tying) is listed once, under the first.
  NamedParams named_parameters() const;
  std::vector<Var> parameters() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // The parameter at a dotted path; throws naming the path when there is none.
  Var parameter(const std::string& path) const;
  int64_t num_parameters() const;

  // Freezing (fine-tuning with adapters, layers/lora/): a frozen parameter keeps
  // requires_grad = false, so backward computes no gradient for it and optimizers,
  // the DDP reducer and clipping, built from trainable_parameters(), never see it.
  void freeze();
  // The parameters that require grad, in named_parameters() order.
  NamedParams trainable_parameters() const;

  // (dotted path, buffer) in registration order, depth first. Buffers are Vars
  // that never require grad and are not parameters, so optimizers, DDP and grad
  // clipping never see them.
  NamedParams named_buffers() const;

  // Handles to the parameter and buffer data (no copy), keyed by dotted path.
  std::map<std::string, Tensor> state_dict() const;
  // Copies every tensor into the parameter or buffer of the same path (converting
  // dtype and device). Throws attnlab::Error on a missing or unexpected name or a
  // shape mismatch, before anything is copied.
  void load_state_dict(const std::map<std::string, Tensor>& state);

  // Training mode (dropout on) is propagated to every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Zeros every accumulated gradient in place (buffers are kept).
  void zero_grad();

  // Auxiliary losses (e.g. mixture-of-heads load balance) that the last
  // training-mode forward of this module and its descendants recorded, summed
  // and handed over once: each module forgets its own. Undefined when there are
  // none. A model adds them to its loss with a weight (GPT::loss).
  Var take_aux_losses();

  // Converts every parameter and buffer in place; tied parameters stay tied.
  // Gradients are dropped. Build optimizers after converting.
  void to(DType dtype);
  void to(Device device);
  DType dtype() const;    // of the first parameter (f32 when there is none)
  Device device() const;  // of the first parameter (the CPU when there is none)

 protected:
  // Registers a trainable parameter initialised with `init`; returns its handle.
  Var register_parameter(const std::string& name, Tensor init);
  // Registers a persistent buffer: saved and loaded with state_dict() under its
  // dotted path like a parameter, but not trainable and not in parameters().
  // The handle stays valid across load_state_dict() and to().
  Var register_buffer(const std::string& name, Tensor init);
  // Registers an existing Var under another name (a tied parameter).
  void register_shared_parameter(const std::string& name, const Var& v);
  // This module's own recorded auxiliary loss, handed over and forgotten;
  // undefined when it has none (the default).
  virtual Var take_aux_loss() { return Var(); }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    check_new_name(name);
    children_.emplace_back(name, m);
    return m;
  }

 private:
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, NamedParams& out, std::vector<const VarImpl*>& seen) const;
  void collect_buffers(const std::string& prefix, NamedParams& out) const;
  // Parameters, then buffers: what state_dict() holds.
  NamedParams named_state() const;

  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Var>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Children named "0", "1", ... (PyTorch's nn.ModuleList).
template <class M>
class ModuleList : public Module {
 public:
  void append(std::shared_ptr<M> m) { items_.push_back(register_module(std::to_string(items_.size()), m)); }
  size_t size() const { return items_.size(); }
  M& operator[](size_t i) const { return *items_.at(i); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::shared_ptr<M>> items_;
};

// A module that maps one Var to one Var (Linear, norms, MLP, dropout, attention).
class Layer : public Module {
 public:
  virtual Var forward(const Var& x) = 0;
  Var operator()(const Var& x) { return forward(x); }
};

}  // namespace attnlab
