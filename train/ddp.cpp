#include "train/ddp.h"

#include <cmath>

#include "optim/clip.h"

namespace attnlab {

namespace {

void broadcast_from_root(Communicator& comm, const std::vector<Var>& params) {
  std::vector<WorkPtr> works;
  for (const Var& p : params) {
    Tensor t = p.data();
    works.push_back(comm.broadcast_async(t, 0));
  }
  for (const WorkPtr& w : works) w->wait();
}

}  // namespace

DataParallel::DataParallel(std::shared_ptr<Communicator> comm, const NamedVars& params,
                           const std::vector<ParamGroup>& groups, const OptimizerFactory& make,
                           const DataParallelOptions& options)
    : comm_(std::move(comm)) {
  ATTNLAB_CHECK(options.bucket_mb > 0, "train.bucket_mb = ", options.bucket_mb, ": expected > 0");
  for (const auto& np : params) params_.push_back(np.second);
  if (comm_->size() > 1) broadcast_from_root(*comm_, params_);
  if (comm_->size() == 1 && !options.zero1) {
    optim_ = make(groups);
    return;
  }
  const int64_t elem = static_cast<int64_t>(dtype_size(params_.front().dtype()));
  const int64_t bucket_elems = std::max<int64_t>(1, static_cast<int64_t>(options.bucket_mb * (1 << 20)) / elem);
  auto mode = options.zero1 ? GradReducer::Mode::reduce_scatter : GradReducer::Mode::all_reduce;
  reducer_ = std::make_unique<GradReducer>(comm_, params_, bucket_elems, mode);
  if (options.zero1)
    zero_ = std::make_unique<Zero1Optimizer>(comm_, params, groups, reducer_->layout(), reducer_->shard_grads(), make);
  else
    optim_ = make(groups);
}

void DataParallel::prepare_backward(bool last_micro_step) {
  if (reducer_) reducer_->set_sync(last_micro_step);
}

void DataParallel::finish_backward() {
  if (reducer_) reducer_->finish();
}

double DataParallel::clip_grad_norm(double max_norm) {
  if (zero_) return max_norm > 0 ? zero_->clip_grad_norm(max_norm) : zero_->grad_norm();
  return max_norm > 0 ? attnlab::clip_grad_norm(params_, max_norm) : grad_norm(params_);
}

void DataParallel::step() {
  if (zero_) zero_->step();
  else optim_->step();
}

void DataParallel::zero_grad() {
  if (zero_) zero_->zero_grad();
  else optim_->zero_grad();
}

void DataParallel::set_lr(double lr) {
  if (zero_) zero_->set_lr(lr);
  else optim_->set_lr(lr);
}

int64_t DataParallel::step_count() const { return zero_ ? zero_->step_count() : optim_->step_count(); }

Optimizer::State DataParallel::optimizer_state() const { return zero_ ? zero_->full_state() : optim_->state(); }

void DataParallel::load_optimizer_state(const Optimizer::State& state, int64_t step_count) {
  if (zero_) zero_->load_full_state(state, step_count);
  else optim_->load_state(state, step_count);
}

}  // namespace attnlab
