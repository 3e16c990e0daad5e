#include "train/ddp_reducer.h"

#include <numeric>

namespace attnlab {

struct GradReducer::State {
  std::shared_ptr<Communicator> comm;
  Mode mode;
  const BucketLayout* layout;
  Tensor flat, shard;
  std::vector<int> waiting;  // per bucket: gradients not ready yet in this backward
  int next = 0;              // the next bucket to start
  std::vector<WorkPtr> works;
  bool sync = true;

  void rearm() {
    for (size_t b = 0; b < layout->buckets.size(); ++b)
      waiting[b] = static_cast<int>(layout->buckets[b].members.size());
    next = 0;
    works.clear();
  }

  void launch(int b) {
    const BucketLayout::Bucket& bk = layout->buckets[static_cast<size_t>(b)];
    Tensor in = flat.slice(bk.offset, bk.offset + bk.size);
    if (mode == Mode::all_reduce) {
      works.push_back(comm->all_reduce_async(in, ReduceOp::avg));
    } else {
      Tensor out = shard.slice(bk.shard_offset, bk.shard_offset + bk.block);
      works.push_back(comm->reduce_scatter_async(in, out, ReduceOp::avg));
    }
  }

  void ready(int param) {
    if (!sync) return;
    int b = layout->slots[static_cast<size_t>(param)].bucket;
    if (waiting[static_cast<size_t>(b)] > 0) --waiting[static_cast<size_t>(b)];
    const int n = static_cast<int>(layout->buckets.size());
    while (next < n && waiting[static_cast<size_t>(next)] == 0) launch(next++);
    for (const WorkPtr& w : works) w->test();  // lets MPI move the buckets already started
  }
};

GradReducer::GradReducer(std::shared_ptr<Communicator> comm, const std::vector<Var>& params, int64_t bucket_elems,
                         Mode mode)
    : state_(std::make_shared<State>()) {
  ATTNLAB_CHECK(!params.empty(), "data parallel: no parameters");
  const Tensor& first = params.front().data();
  std::vector<int64_t> numels;
  for (const Var& p : params) {
    ATTNLAB_CHECK(p.requires_grad(), "data parallel: a parameter does not require grad: ", p.data().str());
    ATTNLAB_CHECK(p.dtype() == first.dtype() && p.device() == first.device(),
                  "data parallel: parameters must share one dtype and device, got ", first.str(), " and ",
                  p.data().str());
    numels.push_back(p.numel());
  }
  std::vector<int> order(params.size());
  std::iota(order.rbegin(), order.rend(), 0);  // backward completes the last layers first
  layout_ = plan_buckets(numels, order, bucket_elems, comm->size());
  flat_ = Tensor::zeros({layout_.total}, first.dtype(), first.device());
  if (mode == Mode::reduce_scatter) shard_ = Tensor::zeros({layout_.shard_total}, first.dtype(), first.device());

  for (size_t i = 0; i < params.size(); ++i) {
    Var p = params[i];
    const BucketLayout::Slot& s = layout_.slots[i];
    Tensor view = flat_.slice(s.offset, s.offset + s.numel).reshape(p.shape());
    if (p.grad().defined()) view.copy_(p.grad());
    p.grad() = view;
    std::weak_ptr<State> weak = state_;
    int index = static_cast<int>(i);
    p.add_grad_ready_hook([weak, index](Var&) {
      if (auto st = weak.lock()) st->ready(index);
    });
  }
  State& st = *state_;
  st.comm = std::move(comm);
  st.mode = mode;
  st.layout = &layout_;
  st.flat = flat_;
  st.shard = shard_;
  st.waiting.assign(layout_.buckets.size(), 0);
  st.rearm();
}

GradReducer::~GradReducer() = default;

void GradReducer::set_sync(bool on) { state_->sync = on; }

int GradReducer::launched() const { return state_->next; }

void GradReducer::finish() {
  State& st = *state_;
  const int n = static_cast<int>(layout_.buckets.size());
  while (st.next < n) st.launch(st.next++);
  for (const WorkPtr& w : st.works) w->wait();
  st.rearm();
}

}  // namespace attnlab
