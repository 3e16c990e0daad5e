#include "optim/optimizer.h"

#include <algorithm>
#include <set>

namespace attnlab {

bool default_decay_filter(const std::string& name, const Var& param) {
  if (param.dim() < 2) return false;
  // The module's own name: "wte" in "wte.weight", "emb" in "blocks.0.emb.weight".
  size_t last = name.rfind('.');
  std::string module = last == std::string::npos ? "" : name.substr(0, last);
  size_t prev = module.rfind('.');
  if (prev != std::string::npos) module = module.substr(prev + 1);
  return !(module == "wte" || module == "wpe" || module.find("emb") != std::string::npos);
}

std::vector<ParamGroup> make_param_groups(const NamedVars& params, double weight_decay, const DecayFilter& decay) {
  ParamGroup with{{}, weight_decay, 1.0}, without{{}, 0.0, 1.0};
  for (const auto& np : params) (decay(np.first, np.second) ? with : without).params.push_back(np);
  std::vector<ParamGroup> out;
  if (!with.params.empty()) out.push_back(std::move(with));
  if (!without.params.empty()) out.push_back(std::move(without));
  return out;
}

Optimizer::Optimizer(const char* kind, std::vector<ParamGroup> groups, double lr,
                     std::vector<std::string> state_names)
    : kind_(kind), groups_(std::move(groups)), state_names_(std::move(state_names)), lr_(lr) {
  std::set<std::string> names;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (const auto& [name, p] : groups_[gi].params) {
      const ParamGroup& g = groups_[gi];
      ATTNLAB_CHECK(names.insert(name).second, kind_, ": parameter '", name, "' appears twice");
      ATTNLAB_CHECK(p.defined() && p.requires_grad(), kind_, ": parameter '", name, "' does not require grad");
      ATTNLAB_CHECK(p.dtype() == DType::f32 || p.dtype() == DType::f64, kind_, ": parameter '", name,
                    "' must be f32 or f64, got ", p.data().str());
      Slot s{name, p, g.weight_decay, g.lr_scale, {}, gi};
      for (size_t i = 0; i < state_names_.size(); ++i) s.buffers.push_back(Tensor::zeros_like(p.data()));
      slots_.push_back(std::move(s));
    }
}

void Optimizer::step() {
  ++step_;
  // CUDA slots wait in `batch` until the group, device or dtype changes.
  std::vector<Slot*> batch;
  size_t batches = 0;
  auto flush = [&] {
    if (batch.empty()) return;
    std::vector<std::vector<const void*>> rows;
    std::vector<int64_t> numels;
    for (Slot* s : batch) {
      std::vector<const void*> row{s->param.data().raw_data(), s->param.grad().raw_data()};
      for (const Tensor& b : s->buffers) row.push_back(b.raw_data());
      rows.push_back(std::move(row));
      numels.push_back(s->param.numel());
    }
    auto table = cuda::pack_multi_tensor(rows, numels, static_cast<int>(2 + state_names_.size()));
    if (device_tables_.size() <= batches) device_tables_.resize(batches + 1);
    const Tensor& words = device_tables_[batches++].words(table, batch.front()->param.device());
    update_device(batch, table, words, lr_ * batch.front()->lr_scale);
    batch.clear();
  };
  for (Slot& s : slots_) {
    const Tensor& g = s.param.grad();
    if (!g.defined()) continue;
    ATTNLAB_CHECK(g.shape() == s.param.shape() && g.dtype() == s.param.dtype() && g.device() == s.param.device(),
                  kind_, ": gradient ", g.str(), " of '", s.name, "' does not match the parameter ",
                  s.param.data().str());
    for (const Tensor& b : s.buffers)
      ATTNLAB_CHECK(b.dtype() == s.param.dtype() && b.device() == s.param.device(), kind_, ": state of '", s.name,
                    "' is ", b.str(), " but the parameter is ", s.param.data().str(),
                    " (build the optimizer after converting the model)");
    if (s.param.device().is_cpu()) {
      update(s, lr_ * s.lr_scale);
      continue;
    }
    if (!batch.empty()) {
      const Slot& f = *batch.front();
      if (f.group != s.group || f.param.device() != s.param.device() || f.param.dtype() != s.param.dtype()) flush();
    }
    batch.push_back(&s);
  }
  flush();
}

void Optimizer::update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable&, const Tensor&,
                              double) {
  throw Error(detail::cat(kind_, ": no CUDA update; '", slots.front()->name, "' is ",
                          slots.front()->param.data().str()));
}

void Optimizer::zero_grad() {
  for (Slot& s : slots_) s.param.zero_grad();
}

Optimizer::State Optimizer::state() const {
  State out;
  for (const Slot& s : slots_) {
    auto& m = out[s.name];
    for (size_t i = 0; i < state_names_.size(); ++i) m.emplace(state_names_[i], s.buffers[i]);
  }
  return out;
}

void Optimizer::load_state(const State& state, int64_t step_count) {
  ATTNLAB_CHECK(step_count >= 0, kind_, "::load_state: negative step count ", step_count);
  for (const Slot& s : slots_) {
    auto it = state.find(s.name);
    ATTNLAB_CHECK(it != state.end() || state_names_.empty(), kind_, "::load_state: no state for parameter '",
                  s.name, "'");
    if (it == state.end()) continue;
    for (const std::string& n : state_names_) {
      auto t = it->second.find(n);
      ATTNLAB_CHECK(t != it->second.end(), kind_, "::load_state: parameter '", s.name, "' has no '", n, "'");
      ATTNLAB_CHECK(t->second.shape() == s.param.shape(), kind_, "::load_state: '", s.name, "/", n, "' has shape ",
                    shape_str(t->second.shape()), ", the parameter has ", shape_str(s.param.shape()));
    }
    for (const auto& [n, t] : it->second)
      ATTNLAB_CHECK(std::find(state_names_.begin(), state_names_.end(), n) != state_names_.end(), kind_,
                    "::load_state: unexpected state '", n, "' for parameter '", s.name, "'");
  }
  for (const auto& [name, m] : state) {
    bool known = std::any_of(slots_.begin(), slots_.end(), [&](const Slot& s) { return s.name == name; });
    ATTNLAB_CHECK(known, kind_, "::load_state: unexpected parameter '", name, "'");
  }
  for (Slot& s : slots_)
    for (size_t i = 0; i < state_names_.size(); ++i) s.buffers[i].copy_(state.at(s.name).at(state_names_[i]));
  step_ = step_count;
}

}  // namespace attnlab
