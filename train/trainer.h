#pragma once
// The training loop: forward, loss, backward (with gradient accumulation),
// clip, optimizer step; periodic eval, JSONL metrics, atomic checkpoints, and
// bit-exact resume.
#include <limits>
#include <memory>
#include <string>

#include "core/comm/communicator.h"
#include "data/loader.h"
#include "layers/gpt.h"
#include "optim/schedule.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/ddp.h"
#include "train/metrics.h"

namespace attnlab {

struct TrainSummary {
  int64_t steps = 0;
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  double last_val_loss = std::numeric_limits<double>::quiet_NaN();
  double tokens_per_s = 0;
  std::string run_dir;
};

struct StepStats {
  double loss = 0;  // mean over the micro-batches
  double lr = 0;
  double grad_norm = 0;  // before clipping
  // GPT::last_loss_terms, mean over the micro-batches and ranks (in `loss` already).
  std::vector<std::pair<std::string, double>> terms;
  // Attention entropy telemetry, on logged steps only (train.attn_entropy): per
  // layer, the mean over micro-batches and ranks; empty otherwise.
  std::vector<LayerAttnStats> attn_stats;
};

struct TrainerOptions {
  bool quiet = false;      // no console progress (tests)
  int64_t stop_after = 0;  // stop (with a checkpoint) after this step, to resume later; 0 = run to train.steps
  // The ranks of a data-parallel run; null: the world communicator of train.dist.
  std::shared_ptr<Communicator> comm = nullptr;
};

// Data parallel (train/ddp.h): every rank constructs a Trainer with the same
// config and calls run(); data.batch_size is per rank, losses and gradients are
// averaged over ranks, and rank 0 alone writes metrics, checkpoints and progress.
class Trainer {
 public:
  // Validates everything (config, model, shards) before creating the run dir.
  explicit Trainer(Config cfg, TrainerOptions opts = {});
  // Continues the run in `run_dir` from its checkpoint; `overrides` may change
  // e.g. train.steps. Gives the same losses as an uninterrupted run.
  static std::unique_ptr<Trainer> resume(const std::string& run_dir, const std::vector<std::string>& overrides,
                                         TrainerOptions opts = {});

  TrainSummary run();
  // One optimizer step (all micro-batches, clip, update); run() is a loop of these.
  StepStats train_step();

  // Mean loss over train.eval_batches validation batches (the same ones every
  // time), over all ranks: a collective.
  double evaluate();
  GPT& model() { return *model_; }
  Communicator& comm() const { return *comm_; }
  int64_t step() const { return step_; }
  const Config& config() const { return cfg_; }
  // A collective (the ZeRO-1 state is gathered); rank 0 writes the file.
  void save(const std::string& path) const;

 private:
  void restore(const Checkpoint& ckpt);
  // Whether run() writes a metrics line after `step` (log_every, the last step, an eval).
  bool logs_at(int64_t step) const;

  Config cfg_;
  TrainerOptions opts_;
  std::string run_dir_;
  Device device_;  // train.device; under NCCL, this rank's GPU
  std::shared_ptr<Communicator> comm_;
  std::unique_ptr<GPT> model_;
  std::unique_ptr<DataParallel> dp_;
  LRSchedule schedule_;
  std::unique_ptr<TokenLoader> train_loader_, val_loader_;
  int64_t step_ = 0;
  bool resumed_ = false;
  bool grads_ready_ = false;
  bool adapter_only_ = false;     // checkpoints hold the adapters only (lora.save = adapter)
  int64_t base_fingerprint_ = 0;  // of train.init_from's weights
};

// The model a checkpoint describes, with its parameters loaded.
std::unique_ptr<GPT> load_model(const Checkpoint& ckpt, Config* cfg_out = nullptr);

}  // namespace attnlab
