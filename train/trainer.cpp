#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "core/comm/world.h"
#include "data/file_io.h"
#include "optim/adamw.h"
#include "optim/sgd.h"
#include "train/finetune.h"
#include "train/model_config.h"
#include "train/progress.h"

namespace attnlab {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& o, std::vector<ParamGroup> groups) {
  if (o.name == "adamw") {
    AdamWOptions a;
    a.lr = o.lr;
    a.beta1 = o.beta1;
    a.beta2 = o.beta2;
    a.eps = o.eps;
    a.weight_decay = o.weight_decay;
    return std::make_unique<AdamW>(std::move(groups), a);
  }
  SGDOptions s;
  s.lr = o.lr;
  s.momentum = o.momentum;
  s.weight_decay = o.weight_decay;
  return std::make_unique<SGD>(std::move(groups), s);
}

// Ranks started with different configs (overrides) would train different
// models: every rank compares a hash of its resolved config with the others'.
void check_same_config(Communicator& comm, const Config& cfg) {
  if (comm.size() == 1) return;
  const double h = static_cast<double>(std::hash<std::string>{}(resolved_ini(cfg)) >> 12);  // exact in a double
  ATTNLAB_CHECK(comm.sum(h) == h * comm.size(), "the resolved config differs between ranks (same file and ",
                "--section.key overrides on every rank?)");
}

// Rank 0 keeps the run's dropout stream (the one checkpoints record); other
// ranks draw their own masks from a stream keyed by their rank.
void key_dropout_by_rank(GPT& model, int rank) {
  if (rank == 0) return;
  Generator& g = model.dropout_generator();
  g.set_state(g.seed() ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(rank)), g.offset());
}

LRSchedule make_schedule(const Config& cfg) {
  LRSchedule s;
  s.kind = parse_schedule_kind(cfg.optim.schedule);
  s.lr = cfg.optim.lr;
  s.warmup_steps = cfg.optim.warmup_steps;
  s.total_steps = cfg.train.steps;
  s.min_lr_ratio = cfg.optim.min_lr_ratio;
  s.decay_fraction = cfg.optim.decay_fraction;
  s.validate();
  return s;
}

std::unique_ptr<TokenLoader> make_loader(const Config& cfg, const std::string& path, LoaderMode mode,
                                         const Communicator& comm) {
  LoaderOptions o;
  o.rank = comm.rank();
  o.world_size = comm.size();
  o.batch = cfg.data.batch_size;
  o.seq_len = cfg.data.seq_len;
  o.seed = static_cast<uint64_t>(cfg.train.seed);
  o.mode = mode;
  auto loader = std::make_unique<TokenLoader>(path, o);
  const TokenShard& shard = loader->shard();
  ATTNLAB_CHECK(shard.vocab_size == 0 || static_cast<int64_t>(shard.vocab_size) <= cfg.model.vocab_size,
                "data: shard ", path, " was tokenized with vocab ", shard.vocab_size, " (", shard.tokenizer,
                ") but model.vocab_size = ", cfg.model.vocab_size);
  for (uint32_t t : shard.tokens)
    ATTNLAB_CHECK(static_cast<int64_t>(t) < cfg.model.vocab_size, "data: shard ", path, " holds token ", t,
                  " >= model.vocab_size = ", cfg.model.vocab_size);
  return loader;
}

// Every rank's telemetry averaged over ranks (each rank holds the same layers and
// sees as many rows, so the mean of the rank means is the mean over all rows).
void average_over_ranks(std::vector<LayerAttnStats>& stats, Communicator& comm) {
  if (comm.size() == 1) return;
  std::vector<double> flat;
  for (const LayerAttnStats& s : stats)
    for (const auto* v : {&s.entropy, &s.entropy_norm, &s.sink_mass}) flat.insert(flat.end(), v->begin(), v->end());
  if (flat.empty()) return;
  Tensor t = Tensor::from(flat, {static_cast<int64_t>(flat.size())});
  comm.all_reduce(t, ReduceOp::avg);
  std::vector<double> mean = t.to_vector<double>();
  size_t i = 0;
  for (LayerAttnStats& s : stats)
    for (auto* v : {&s.entropy, &s.entropy_norm, &s.sink_mass})
      for (double& x : *v) x = mean[i++];
}

}  // namespace

Trainer::Trainer(Config cfg, TrainerOptions opts) : cfg_(std::move(cfg)), opts_(opts) {
  require(cfg_, "data.train");
  device_ = usable_device(cfg_.train.device, "train.device");
  comm_ = opts_.comm ? opts_.comm : world_communicator(cfg_.train.dist, device_, cfg_.train.comm_timeout);
  // NCCL gives each rank of a node its own GPU (local rank modulo the count).
  if (device_.is_cuda() && comm_->scalar_device().is_cuda()) device_ = comm_->scalar_device();
  check_same_config(*comm_, cfg_);
  if (cfg_.train.threads > 0) omp_set_num_threads(cfg_.train.threads);
  BuiltModel built = build_model(cfg_);  // train.init_from and [lora]
  model_ = std::move(built.model);
  base_fingerprint_ = built.base_fingerprint;
  adapter_only_ = cfg_.lora.kind != "none" && cfg_.lora.save == "adapter";
  key_dropout_by_rank(*model_, comm_->rank());
  model_->to(device_);  // after build_model: the base fingerprint is of the host weights
  // Frozen base weights get no gradient, optimizer state, all-reduce or clipping.
  NamedVars named = model_->trainable_parameters();
  ATTNLAB_CHECK(!named.empty(), "the model has no trainable parameters");
  const OptimConfig oc = cfg_.optim;
  dp_ = std::make_unique<DataParallel>(
      comm_, named, make_param_groups(named, oc.weight_decay),
      [oc](std::vector<ParamGroup> groups) { return make_optimizer(oc, std::move(groups)); },
      DataParallelOptions{cfg_.train.bucket_mb, cfg_.train.zero1});
  schedule_ = make_schedule(cfg_);
  train_loader_ = make_loader(cfg_, cfg_.data.train, LoaderMode::train, *comm_);
  if (!cfg_.data.val.empty()) val_loader_ = make_loader(cfg_, cfg_.data.val, LoaderMode::val, *comm_);
  run_dir_ = cfg_.train.out_dir;
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir, const std::vector<std::string>& overrides,
                                         TrainerOptions opts) {
  std::string path = (fs::path(run_dir) / "ckpt.h5").string();
  ATTNLAB_CHECK(fs::exists(path), "--resume ", run_dir, ": no checkpoint ", path);
  Checkpoint ckpt = load_checkpoint(path);
  std::vector<std::string> all = overrides;
  all.push_back("--train.out_dir=" + run_dir);
  auto t = std::make_unique<Trainer>(parse_config_text(ckpt.config, path, all), opts);
  t->restore(ckpt);
  return t;
}

void Trainer::restore(const Checkpoint& ckpt) {
  auto meta = [&](const char* key) {
    auto it = ckpt.meta.find(key);
    ATTNLAB_CHECK(it != ckpt.meta.end(), "checkpoint: meta/", key, " is missing");
    return it->second;
  };
  if (is_adapter_checkpoint(ckpt)) {
    // The base came from train.init_from in the constructor: it must be the one
    // this run started from.
    ATTNLAB_CHECK(meta("base_fingerprint") == base_fingerprint_, "--resume: train.init_from = ", cfg_.train.init_from,
                  " no longer holds the base weights this adapter run started from");
    load_adapter_weights(*model_, ckpt.params, "checkpoint");
  } else {
    model_->load_state_dict(ckpt.params);
  }
  dp_->load_optimizer_state(ckpt.optim, meta("optim_step"));
  step_ = meta("step");
  train_loader_->set_state({static_cast<uint64_t>(meta("loader_seed")), static_cast<uint64_t>(meta("loader_offset")),
                            static_cast<uint64_t>(meta("loader_position"))});
  model_->dropout_generator().set_state(static_cast<uint64_t>(meta("dropout_seed")),
                                        static_cast<uint64_t>(meta("dropout_offset")));
  key_dropout_by_rank(*model_, comm_->rank());
  resumed_ = true;
}

void Trainer::save(const std::string& path) const {
  Checkpoint ckpt;
  if (adapter_only_)
    for (auto& [name, p] : model_->trainable_parameters()) ckpt.params.emplace(name, p.data());
  else
    ckpt.params = model_->state_dict();
  ckpt.optim = dp_->optimizer_state();
  if (comm_->rank() != 0) return;
  LoaderState ls = train_loader_->state();
  ckpt.meta = {{"step", step_},
               {"optim_step", dp_->step_count()},
               {"loader_seed", static_cast<int64_t>(ls.seed)},
               {"loader_offset", static_cast<int64_t>(ls.offset)},
               {"loader_position", static_cast<int64_t>(ls.position)},
               {"dropout_seed", static_cast<int64_t>(model_->dropout_generator().seed())},
               {"dropout_offset", static_cast<int64_t>(model_->dropout_generator().offset())}};
  if (adapter_only_) {
    ckpt.meta["adapter_only"] = 1;
    ckpt.meta["base_fingerprint"] = base_fingerprint_;
  }
  ckpt.config = resolved_ini(cfg_);
  save_checkpoint(path, ckpt);
}

StepStats Trainer::train_step() {
  if (!grads_ready_) {
    dp_->zero_grad();  // gradient buffers exist from the first step on
    grads_ready_ = true;
  }
  StepStats st;
  st.lr = schedule_.lr_at(step_);
  dp_->set_lr(st.lr);
  model_->train();
  // Regularisers and entropy telemetry (GPT::loss): the step, and stats only when this step is logged.
  model_->set_train_step(step_);
  const bool record_stats = cfg_.train.attn_entropy && logs_at(step_ + 1);
  model_->record_attention_stats(record_stats);
  int accum = cfg_.train.grad_accum;
  AutocastGuard autocast(cfg_.train.precision == "bf16");
  for (int micro = 0; micro < accum; ++micro) {
    Batch b = train_loader_->next().to(device_);
    Var loss = model_->loss(b.x, b.y);
    st.loss += loss.data().item<double>() / accum;
    const auto& terms = model_->last_loss_terms();
    if (micro == 0)
      for (const auto& [name, v] : terms) st.terms.emplace_back(name, 0.0);
    for (size_t i = 0; i < terms.size(); ++i) st.terms[i].second += terms[i].second / accum;
    dp_->prepare_backward(micro == accum - 1);
    (accum == 1 ? loss : ag::scale(loss, 1.0 / accum)).backward();
  }
  dp_->finish_backward();
  st.loss = comm_->mean(st.loss);
  for (auto& t : st.terms) t.second = comm_->mean(t.second);
  if (record_stats) {
    st.attn_stats = model_->take_attention_stats();
    average_over_ranks(st.attn_stats, *comm_);  // a collective: every rank records on logged steps
  }
  st.grad_norm = dp_->clip_grad_norm(cfg_.optim.grad_clip);
  ATTNLAB_CHECK(std::isfinite(st.loss), "training diverged at step ", step_ + 1, ": loss = ", st.loss,
                " (try a lower optim.lr or a warmup)");
  dp_->step();
  dp_->zero_grad();
  ++step_;
  return st;
}

bool Trainer::logs_at(int64_t step) const {
  const TrainConfig& tc = cfg_.train;
  const bool eval = val_loader_ && tc.eval_every > 0 && (step % tc.eval_every == 0 || step == tc.steps);
  return step % tc.log_every == 0 || step == tc.steps || eval;
}

double Trainer::evaluate() {
  if (!val_loader_) return std::numeric_limits<double>::quiet_NaN();
  NoGradGuard no_grad;
  AutocastGuard autocast(cfg_.train.precision == "bf16");
  model_->eval();
  val_loader_->reset();
  double total = 0;
  int n = cfg_.train.eval_batches;
  for (int i = 0; i < n; ++i) {
    Batch b = val_loader_->next().to(device_);
    total += model_->loss(b.x, b.y).data().item<double>();
  }
  model_->train();
  return comm_->mean(total / n);
}

TrainSummary Trainer::run() {
  const TrainConfig& tc = cfg_.train;
  const bool rank0 = comm_->rank() == 0;
  std::unique_ptr<MetricsWriter> metrics;
  if (rank0) {
    fs::create_directories(run_dir_);
    write_file_atomic((fs::path(run_dir_) / "config.ini").string(), resolved_ini(cfg_));
    metrics = std::make_unique<MetricsWriter>((fs::path(run_dir_) / "metrics.jsonl").string(), resumed_ ? step_ : -1);
  }
  std::string ckpt_path = (fs::path(run_dir_) / "ckpt.h5").string();
  Progress progress(tc.steps, opts_.quiet || !rank0);

  const double tokens_per_step =
      static_cast<double>(cfg_.data.batch_size) * cfg_.data.seq_len * tc.grad_accum * comm_->size();
  const double flops_per_token = model_->flops_per_token(cfg_.data.seq_len);
  TrainSummary summary;
  summary.run_dir = run_dir_;
  double window_loss = 0, window_time = 0;
  std::vector<std::pair<std::string, double>> window_terms;  // summed like window_loss
  int64_t window_steps = 0;
  const int64_t last_step = opts_.stop_after > 0 ? std::min(opts_.stop_after, tc.steps) : tc.steps;
  while (step_ < last_step) {
    auto t0 = std::chrono::steady_clock::now();
    StepStats st = train_step();
    double loss = st.loss;
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    window_loss += loss, window_time += dt, ++window_steps;
    if (window_terms.empty())
      for (const auto& [name, v] : st.terms) window_terms.emplace_back(name, 0.0);
    for (size_t i = 0; i < st.terms.size() && i < window_terms.size(); ++i) window_terms[i].second += st.terms[i].second;
    summary.last_loss = loss;

    bool eval_now = val_loader_ && tc.eval_every > 0 && (step_ % tc.eval_every == 0 || step_ == tc.steps);
    double val_loss = eval_now ? evaluate() : std::numeric_limits<double>::quiet_NaN();
    if (eval_now) summary.last_val_loss = val_loss;
    double tok_s = tokens_per_step * window_steps / window_time;
    bool log_now = logs_at(step_);
    if (log_now && rank0) {
      Json row = Json::object();
      row["step"] = step_;
      row["loss"] = window_loss / window_steps;
      row["lr"] = st.lr;
      row["grad_norm"] = st.grad_norm;
      row["tokens_per_s"] = tok_s;
      row["mfu"] = flops_per_token * tok_s / (tc.peak_flops * comm_->size());
      if (eval_now) row["val_loss"] = val_loss;
      // The loss terms beyond the cross-entropy (GPT::last_loss_terms), averaged like loss.
      for (const auto& [name, v] : window_terms) row[name] = v / window_steps;
      if (model_->regularizers().options().locality.enabled())
        row["locality_lambda"] = model_->regularizers().options().locality.weight_at(step_ - 1);
      if (!st.attn_stats.empty()) add_attention_stats(row, st.attn_stats);
      metrics->write(row);
    }
    if (log_now) {
      summary.tokens_per_s = tok_s;
      window_loss = window_time = 0;
      window_steps = 0;
      window_terms.clear();
    }
    progress.update(step_, loss, summary.last_val_loss, tok_s, log_now);
    if ((tc.ckpt_every > 0 && step_ % tc.ckpt_every == 0) || step_ == last_step) save(ckpt_path);
  }
  progress.finish();
  comm_->barrier();  // every rank returns once the checkpoint is on disk
  summary.steps = step_;
  // One object with the run's outcome, for ablation tables.
  Json out = Json::object();
  out["steps"] = step_;
  out["params"] = model_->num_parameters();
  out["loss"] = summary.last_loss;
  if (!std::isnan(summary.last_val_loss)) out["val_loss"] = summary.last_val_loss;
  out["tokens_per_s"] = summary.tokens_per_s;
  if (rank0) write_file_atomic((fs::path(run_dir_) / "summary.json").string(), out.dump(2) + "\n");
  return summary;
}

std::unique_ptr<GPT> load_model(const Checkpoint& ckpt, Config* cfg_out) {
  Config cfg = parse_config_text(ckpt.config, "checkpoint config");
  // An adapter checkpoint applies to its base (train.init_from), loaded first.
  const bool adapter = is_adapter_checkpoint(ckpt);
  BuiltModel built = build_model(cfg, adapter);
  std::unique_ptr<GPT> model = std::move(built.model);
  if (adapter) {
    ATTNLAB_CHECK(ckpt.meta.count("base_fingerprint") && ckpt.meta.at("base_fingerprint") == built.base_fingerprint,
                  "train.init_from = ", cfg.train.init_from,
                  " does not hold the base weights this adapter checkpoint was trained from");
    load_adapter_weights(*model, ckpt.params, "adapter checkpoint");
  } else {
    model->load_state_dict(ckpt.params);
  }
  model->eval();
  if (cfg_out) *cfg_out = cfg;
  return model;
}

}  // namespace attnlab
