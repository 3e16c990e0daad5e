#include "optim/zero.h"

#include <cmath>
#include <map>

#include "core/ops.h"
#include "optim/clip.h"

namespace attnlab {

Zero1Optimizer::Zero1Optimizer(std::shared_ptr<Communicator> comm, const NamedVars& params,
                               const std::vector<ParamGroup>& groups, const BucketLayout& layout, Tensor shard_grads,
                               const OptimizerFactory& make)
    : comm_(std::move(comm)), params_(params), layout_(layout), shard_grads_(std::move(shard_grads)) {
  ATTNLAB_CHECK(layout_.slots.size() == params_.size() && layout_.world == comm_->size(),
                "ZeRO-1: the bucket layout does not match the parameters or the world size");
  ATTNLAB_CHECK(shard_grads_.numel() == layout_.shard_total, "ZeRO-1: shard gradients ", shard_grads_.str(),
                " do not hold ", layout_.shard_total, " elements");
  const Tensor& first = params_.front().second.data();
  flat_params_ = Tensor::zeros({layout_.total}, first.dtype(), first.device());
  for (size_t i = 0; i < params_.size(); ++i) {
    Var p = params_[i].second;
    const BucketLayout::Slot& s = layout_.slots[i];
    Tensor view = flat_params_.slice(s.offset, s.offset + s.numel).reshape(p.shape());
    view.copy_(p.data());
    p.data() = view;
  }

  std::map<const VarImpl*, const ParamGroup*> group_of;
  for (const ParamGroup& g : groups)
    for (const auto& np : g.params) group_of[np.second.impl()] = &g;
  std::vector<ParamGroup> local_groups;
  std::map<const ParamGroup*, size_t> local_index;
  const int r = comm_->rank();
  for (size_t i = 0; i < params_.size(); ++i) {
    auto [lo, hi] = layout_.owned(static_cast<int>(i), r);
    if (lo == hi) continue;
    auto it = group_of.find(params_[i].second.impl());
    ATTNLAB_CHECK(it != group_of.end(), "ZeRO-1: parameter '", params_[i].first, "' is in no parameter group");
    const BucketLayout::Slot& s = layout_.slots[i];
    const BucketLayout::Bucket& b = layout_.buckets[static_cast<size_t>(s.bucket)];
    int64_t g0 = b.shard_offset + (lo - (b.offset + r * b.block));
    Var v(flat_params_.slice(lo, hi), true);
    v.grad() = shard_grads_.slice(g0, g0 + (hi - lo));
    parts_.push_back({static_cast<int>(i), lo, hi});
    shard_vars_.push_back(v);
    auto [pos, fresh] = local_index.emplace(it->second, local_groups.size());
    if (fresh) local_groups.push_back({{}, it->second->weight_decay, it->second->lr_scale});
    local_groups[pos->second].params.emplace_back(params_[i].first, v);
  }
  local_ = make(std::move(local_groups));
}

void Zero1Optimizer::all_gather_buckets(Tensor& flat) const {
  const int r = comm_->rank();
  std::vector<WorkPtr> works;
  for (const BucketLayout::Bucket& b : layout_.buckets) {
    Tensor mine = flat.slice(b.offset + r * b.block, b.offset + (r + 1) * b.block);
    Tensor all = flat.slice(b.offset, b.offset + b.size);
    works.push_back(comm_->all_gather_async(mine, all));
  }
  for (const WorkPtr& w : works) w->wait();
}

void Zero1Optimizer::step() {
  local_->step();
  all_gather_buckets(flat_params_);
}

double Zero1Optimizer::grad_norm() const {
  double local = attnlab::grad_norm(shard_vars_);
  if (comm_->size() == 1) return local;  // exactly the plain optimizer's norm
  return std::sqrt(comm_->sum(local * local));
}

double Zero1Optimizer::clip_grad_norm(double max_norm) {
  ATTNLAB_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  double norm = grad_norm();
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  double coef = max_norm / (norm + 1e-6);
  for (Var& v : shard_vars_) {
    Tensor g = v.grad();
    ops::axpy(g, coef - 1.0, g);  // g *= coef in place, as clip_grad_norm does
  }
  return norm;
}

void Zero1Optimizer::zero_grad() {
  for (auto& np : params_) np.second.zero_grad();
}

Optimizer::State Zero1Optimizer::full_state() const {
  Optimizer::State local = local_->state(), out;
  for (const auto& np : params_) out[np.first];
  for (const std::string& name : local_->state_names()) {
    Tensor flat = Tensor::zeros({layout_.total}, flat_params_.dtype(), flat_params_.device());
    for (const Part& part : parts_) {
      Tensor dst = flat.slice(part.lo, part.hi);
      dst.copy_(local.at(params_[static_cast<size_t>(part.param)].first).at(name));
    }
    all_gather_buckets(flat);
    for (size_t i = 0; i < params_.size(); ++i) {
      const BucketLayout::Slot& s = layout_.slots[i];
      out[params_[i].first][name] = flat.slice(s.offset, s.offset + s.numel).reshape(params_[i].second.shape());
    }
  }
  return out;
}

void Zero1Optimizer::load_full_state(const Optimizer::State& state, int64_t step_count) {
  for (const auto& [name, m] : state) {
    bool known = false;
    for (const auto& np : params_) known = known || np.first == name;
    ATTNLAB_CHECK(known, "ZeRO-1: the optimizer state names an unknown parameter '", name, "'");
  }
  Optimizer::State mine;
  for (const Part& part : parts_) {
    const auto& [name, p] = params_[static_cast<size_t>(part.param)];
    auto it = state.find(name);
    ATTNLAB_CHECK(it != state.end(), "ZeRO-1: the optimizer state has no entry for '", name, "'");
    auto& dst = mine[name];
    for (const auto& [k, t] : it->second) {
      ATTNLAB_CHECK(t.shape() == p.shape(), "ZeRO-1: optimizer state '", name, "/", k, "' has shape ",
                    shape_str(t.shape()), ", the parameter has ", shape_str(p.shape()));
      int64_t start = part.lo - layout_.slots[static_cast<size_t>(part.param)].offset;
      dst[k] = t.flatten().slice(start, start + (part.hi - part.lo));
    }
  }
  local_->load_state(mine, step_count);
}

}  // namespace attnlab
