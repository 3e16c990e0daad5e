#include "layers/module.h"

#include <algorithm>

#include "autograd/functions.h"

namespace attnlab {

void Module::check_new_name(const std::string& name) const {
  ATTNLAB_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: bad name '", name,
                "' (must be non-empty and contain no '.')");
  for (auto& [n, p] : params_) ATTNLAB_CHECK(n != name, "Module: name '", name, "' registered twice");
  for (auto& [n, b] : buffers_) ATTNLAB_CHECK(n != name, "Module: name '", name, "' registered twice");
  for (auto& [n, c] : children_) ATTNLAB_CHECK(n != name, "Module: name '", name, "' registered twice");
}

Var Module::register_parameter(const std::string& name, Tensor init) {
  check_new_name(name);
  ATTNLAB_CHECK(init.defined(), "Module: parameter '", name, "' has no data");
  Var v(std::move(init), true);
  params_.emplace_back(name, v);
  return v;
}

Var Module::register_buffer(const std::string& name, Tensor init) {
  check_new_name(name);
  ATTNLAB_CHECK(init.defined(), "Module: buffer '", name, "' has no data");
  Var v(std::move(init), false);
  buffers_.emplace_back(name, v);
  return v;
}

void Module::register_shared_parameter(const std::string& name, const Var& v) {
  check_new_name(name);
  params_.emplace_back(name, v);
}

void Module::collect(const std::string& prefix, NamedParams& out, std::vector<const VarImpl*>& seen) const {
  for (auto& [n, p] : params_) {
    if (std::find(seen.begin(), seen.end(), p.impl()) != seen.end()) continue;
    seen.push_back(p.impl());
    out.emplace_back(prefix + n, p);
  }
  for (auto& [n, c] : children_) c->collect(prefix + n + ".", out, seen);
}

void Module::collect_buffers(const std::string& prefix, NamedParams& out) const {
  for (auto& [n, b] : buffers_) out.emplace_back(prefix + n, b);
  for (auto& [n, c] : children_) c->collect_buffers(prefix + n + ".", out);
}

NamedParams Module::named_buffers() const {
  NamedParams out;
  collect_buffers("", out);
  return out;
}

NamedParams Module::named_state() const {
  NamedParams out = named_parameters();
  collect_buffers("", out);
  return out;
}

NamedParams Module::named_parameters() const {
  NamedParams out;
  std::vector<const VarImpl*> seen;
  collect("", out, seen);
  return out;
}

std::vector<Var> Module::parameters() const {
  std::vector<Var> out;
  for (auto& [n, p] : named_parameters()) out.push_back(p);
  return out;
}

Var Module::parameter(const std::string& path) const {
  for (auto& [n, p] : named_parameters())
    if (n == path) return p;
  throw Error(detail::cat("Module: no parameter named '", path, "'"));
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

void Module::freeze() {
  for (auto& [n, p] : named_parameters()) p.set_requires_grad(false);
}

NamedParams Module::trainable_parameters() const {
  NamedParams out;
  for (auto& np : named_parameters())
    if (np.second.requires_grad()) out.push_back(np);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  for (auto& [n, p] : named_state()) out.emplace(n, p.data());
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  NamedParams params = named_parameters();
  const size_t n_params = params.size();
  collect_buffers("", params);
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, p] = params[i];
    auto it = state.find(name);
    ATTNLAB_CHECK(it != state.end(), "load_state_dict: missing ", i < n_params ? "parameter" : "buffer", " '", name,
                  "' (expected shape ", shape_str(p.shape()), ")");
    ATTNLAB_CHECK(it->second.shape() == p.shape(), "load_state_dict: shape mismatch for '", name,
                  "': checkpoint has ", shape_str(it->second.shape()), ", model has ", shape_str(p.shape()));
  }
  for (auto& [name, t] : state) {
    bool known = std::any_of(params.begin(), params.end(), [&](auto& np) { return np.first == name; });
    ATTNLAB_CHECK(known, "load_state_dict: unexpected parameter '", name, "' with shape ",
                  shape_str(t.shape()), " (not in the model)");
  }
  for (auto& [name, p] : params) p.data().copy_(state.at(name));
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, c] : children_) c->train(on);
}

void Module::zero_grad() {
  for (auto& [n, p] : named_parameters()) p.zero_grad();
}

Var Module::take_aux_losses() {
  Var total = take_aux_loss();
  for (auto& [n, c] : children_) {
    Var l = c->take_aux_losses();
    if (l.defined()) total = total.defined() ? ag::add(total, l) : l;
  }
  return total;
}

void Module::to(DType dtype) {
  for (auto& [n, p] : named_state()) {
    p.data() = p.data().to(dtype);
    p.grad() = Tensor();
  }
}

void Module::to(Device device) {
  for (auto& [n, p] : named_state()) {
    p.data() = p.data().to(device);
    p.grad() = Tensor();
  }
}

DType Module::dtype() const {
  NamedParams ps = named_parameters();
  return ps.empty() ? DType::f32 : ps.front().second.dtype();
}

Device Module::device() const {
  NamedParams ps = named_parameters();
  return ps.empty() ? Device::cpu() : ps.front().second.device();
}

}  // namespace attnlab
