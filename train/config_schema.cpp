#include "train/config_schema.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "layers/regularizer_options.h"
#include "train/config_detail.h"

namespace attnlab::config {
namespace {

std::string check_device(std::string_view v) {
  if (v == "cpu" || v == "cuda") return "";
  if (v.starts_with("cuda:") && v.size() > 5 &&
      v.find_first_not_of("0123456789", 5) == std::string_view::npos)
    return "";
  return "cpu, cuda or cuda:N";
}

std::string check_not_empty(std::string_view v) { return v.empty() ? "a non-empty value" : ""; }

// Empty, or comma-separated patterns of dotted names made of [A-Za-z0-9_-*].
std::string check_module_patterns(std::string_view v) {
  const std::string_view expected = "a comma-separated list of module-path patterns such as attn.wq,mlp.* "
                                    "(names of letters, digits, '_', '-' and '*'), or nothing for off";
  if (v.empty()) return "";
  for (std::size_t start = 0;;) {
    const auto comma = v.find(',', start);
    std::string_view item = v.substr(start, comma == std::string_view::npos ? v.npos : comma - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.empty() || item.front() == '.' || item.back() == '.' || item.find("..") != std::string_view::npos ||
        item.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-*.") !=
            std::string_view::npos)
      return std::string(expected);
    if (comma == std::string_view::npos) return "";
    start = comma + 1;
  }
}

}  // namespace

const Section<ModelConfig>& model_section() {
  using M = ModelConfig;
  static const Section<M> s{
      "model", "the network",
      {
          {"vocab_size", &M::vocab_size, "256", "vocabulary size (the byte tokenizer needs >= 256)", at_least(1)},
          {"n_layer", &M::n_layer, "4", "number of transformer blocks", at_least(1)},
          {"n_head", &M::n_head, "4", "attention heads (default for attn sections)", at_least(1)},
          {"d_model", &M::d_model, "256", "width of the residual stream", at_least(1)},
          {"d_mlp", &M::d_mlp, "0", "hidden width of the MLP; 0 = 4*d_model", at_least(0)},
          {"mlp", &M::mlp, "gelu", "MLP type", one_of("gelu|relu2|swiglu")},
          {"norm", &M::norm, "layer", "normalization (LayerNorm or RMSNorm)", one_of("layer|rms")},
          {"norm_eps", &M::norm_eps, "1e-5", "epsilon of the norms", above(0)},
          {"pos_emb", &M::pos_emb, "none",
           "absolute positions added to the input: a learned table or fixed sinusoids (attention pos = rope by default)",
           one_of("none|learned|sinusoidal")},
          {"block_size", &M::block_size, "256", "maximum context length", at_least(1)},
          {"tie_embeddings", &M::tie_embeddings, "true", "share the input embedding and output projection"},
          {"bias", &M::bias, "false", "biases in Linear layers and norms"},
          {"dropout", &M::dropout, "0.0", "dropout on the residual branches and embeddings", right_open(0, 1)},
          {"init_std", &M::init_std, "0.02", "standard deviation of the weight init", above(0)},
          {"aux_loss_weight", &M::aux_loss_weight, "0.01",
           "weight of the layers' auxiliary losses in the training loss (MoH load balance)", at_least(0)},
          {"sink_token", &M::sink_token, "false",
           "prepend a learnable sink token (checkpoint: sink_token [1, d_model]) that every layer sees at position 0; "
           "its output is dropped, so targets are unchanged (StreamingLLM's pre-training sink)"},
          {"layers", &M::layers, "default",
           "comma-separated [attn.NAME] section names, cycled over the layers"},
      }};
  return s;
}

const Section<AttnConfig>& attn_section() {
  using A = AttnConfig;
  static const Section<A> s{
      "attn", "one attention variant; any number of [attn.NAME] sections, picked by model.layers",
      {
          {"kind", &A::kind, "softmax", "attention family (diff = Differential Transformer, moh = mixture-of-heads)",
           one_of("softmax|diff|linear|gla|delta|retention|moh")},
          {"n_head", &A::n_head, "0", "heads; 0 = model.n_head (sets d_head = d_model/n_head)", at_least(0)},
          {"n_kv_head", &A::n_kv_head, "0", "key/value heads (1 = MQA, k = GQA); 0 = n_q_head", at_least(0)},
          {"n_q_head", &A::n_q_head, "0",
           "query heads computed (sparse-query attention when < n_head; head width stays d_model/n_head); 0 = n_head",
           at_least(0)},
          {"d_head", &A::d_head, "0", "width of a head; 0 = d_model/n_head", at_least(0)},
          {"pos", &A::pos, "rope", "positional encoding inside attention", one_of("rope|nope|alibi")},
          {"rope_theta", &A::rope_theta, "10000", "RoPE base", above(0)},
          {"rope_fraction", &A::rope_fraction, "1.0", "fraction of each head's dims that RoPE rotates",
           left_open(0, 1)},
          {"rope_scale", &A::rope_scale, "1.0", "RoPE position interpolation: positions are divided by this",
           above(0)},
          {"alibi_scale", &A::alibi_scale, "1.0", "ALiBi position interpolation: distances are divided by this",
           above(0)},
          {"score", &A::score, "softmax",
           "map from logits to weights (sigmoid: bias -log train_len; relu: RMSNorm on head outputs; "
           "softplus: l1-normalised, length-scaled (LSSA); lssar: softplus plus the re-weighting stage, reweight_power)",
           one_of("softmax|sigmoid|relu|softplus|lssar")},
          {"reweight_power", &A::reweight_power, "15",
           "score = lssar: power p of the re-weighting w ~ (n a)^p of the softplus weights a (1 = plain softplus)",
           above(0)},
          {"softcap", &A::softcap, "0", "tanh cap on the attention logits; 0 = off", at_least(0)},
          {"scale", &A::scale, "0", "logit scale; 0 = 1/sqrt(d_head) (qk_norm = l2: the learnable scale's start)",
           at_least(0)},
          {"length_scale", &A::length_scale, "false",
           "multiply logits by log(n)/log(train_len), n = the query's position + 1"},
          {"train_len", &A::train_len, "0", "training context for sigmoid, softplus, length_scale, l2; 0 = model.block_size",
           at_least(0)},
          {"mask", &A::mask, "causal",
           "attention mask (sinks = first sink_tokens + window; strided/fixed = Sparse Transformer; moba = top-k blocks)",
           one_of("causal|none|window|sinks|strided|fixed|moba")},
          {"window", &A::window, "0", "sliding-window size for mask = window or sinks", at_least(0)},
          {"sink_tokens", &A::sink_tokens, "0", "mask = sinks: first tokens every query sees", at_least(0)},
          {"sink_kv", &A::sink_kv, "false", "a learnable key/value slot every query sees"},
          {"stride", &A::stride, "0", "mask = strided or fixed: the pattern's period", at_least(0)},
          {"summary", &A::summary, "1", "mask = fixed: summary positions at the end of each period", at_least(1)},
          {"sparse_heads", &A::sparse_heads, "merged",
           "mask = strided or fixed: merged = every head sees both factor patterns; factorized = half the heads "
           "the local/block pattern A(1), half the stride/summary pattern A(2)",
           one_of("merged|factorized")},
          {"moba_block", &A::moba_block, "0", "mask = moba: keys per block", at_least(0)},
          {"moba_topk", &A::moba_topk, "0", "mask = moba: blocks per query, its own included", at_least(0)},
          {"qk_norm", &A::qk_norm, "none", "normalization of queries and keys over each head (l2: learnable logit scale)",
           one_of("none|rms|l2|layer")},
          {"out_gate", &A::out_gate, "false", "sigmoid gate on the attention output, from the layer input"},
          {"conv", &A::conv, "0", "kernel of a causal depthwise conv on q, k and v; 0 = off", between(0, 4)},
          {"diff_lambda_init", &A::diff_lambda_init, "-1",
           "kind = diff: lambda_init; -1 = 0.8 - 0.6 exp(-0.3 (layer - 1))", right_open(-1, 1)},
          {"moh_shared", &A::moh_shared, "0", "kind = moh: heads every token uses", at_least(0)},
          {"moh_topk", &A::moh_topk, "0", "kind = moh: routed heads per token; 0 = half of the routed heads",
           at_least(0)},
          {"impl", &A::impl, "auto", "kernel (auto = fused where available, else reference)",
           one_of("auto|fused|reference")},
          {"feature_map", &A::feature_map, "auto",
           "linear family: feature map of q and k (auto = elu1 for linear, identity for retention/gla, cosine for delta; "
           "hedgehog = learnable per-head map, then [softmax, softmax of the negation])",
           one_of("auto|identity|elu1|relu|cosine|taylor|hedgehog")},
          {"feature_dim", &A::feature_dim, "0",
           "linear family: width of q and k per head before the feature map; 0 = d_head (16 for taylor)", at_least(0)},
          {"normalize", &A::normalize, "auto",
           "linear family: output normalisation (auto = denominator for linear with elu1/relu/taylor/hedgehog, else "
           "rmsnorm; cottention = divide by n^sigmoid(m) with a learned m per head, feature_map = cosine)",
           one_of("auto|denominator|rmsnorm|none|cottention")},
          {"chunk_size", &A::chunk_size, "64", "linear family: steps per chunk of the chunkwise kernel", at_least(1)},
          {"decay", &A::decay, "0", "retention: per-step decay of every head; 0 = 1 - 2^(-5-h) for head h",
           between(0, 1)},
          {"gated", &A::gated, "false", "delta: gated delta rule (data-dependent decay)"},
          {"gate_rank", &A::gate_rank, "16", "gla: rank of the gate projection", at_least(1)},
          {"gate_tau", &A::gate_tau, "16", "gla: gate temperature, alpha = sigmoid(x W)^(1/tau)", above(0)},
      }};
  return s;
}

const Section<OptimConfig>& optim_section() {
  using O = OptimConfig;
  static const Section<O> s{
      "optim", "optimizer and learning-rate schedule",
      {
          {"name", &O::name, "adamw", "optimizer", one_of("adamw|sgd")},
          {"lr", &O::lr, "3e-4", "peak learning rate", at_least(0)},
          {"min_lr_ratio", &O::min_lr_ratio, "0.1", "final learning rate as a fraction of lr", between(0, 1)},
          {"beta1", &O::beta1, "0.9", "AdamW first-moment decay", right_open(0, 1)},
          {"beta2", &O::beta2, "0.95", "AdamW second-moment decay", right_open(0, 1)},
          {"eps", &O::eps, "1e-8", "AdamW epsilon", above(0)},
          {"weight_decay", &O::weight_decay, "0.1", "decoupled weight decay", at_least(0)},
          {"momentum", &O::momentum, "0.9", "SGD momentum", right_open(0, 1)},
          {"grad_clip", &O::grad_clip, "1.0", "clip the global gradient norm to this; 0 = off", at_least(0)},
          {"schedule", &O::schedule, "cosine", "learning-rate schedule after warmup (wsd = warmup-stable-decay)",
           one_of("cosine|constant|wsd")},
          {"warmup_steps", &O::warmup_steps, "0", "linear warmup steps", at_least(0)},
          {"decay_fraction", &O::decay_fraction, "0.2", "wsd: fraction of the steps spent decaying",
           between(0, 1)},
      }};
  return s;
}

const Section<DataConfig>& data_section() {
  using D = DataConfig;
  static const Section<D> s{
      "data", "token shards and batching",
      {
          {"train", &D::train, "", "path of the training token shard (HDF5 or llm.c .bin), needed to train"},
          {"val", &D::val, "", "path of the validation token shard; empty = no validation"},
          {"tokenizer", &D::tokenizer, "byte", "\"byte\" or the path of a tokenizer.json",
           custom(check_not_empty)},
          {"seq_len", &D::seq_len, "256", "tokens per training sequence", at_least(1)},
          {"batch_size", &D::batch_size, "8", "sequences per micro-batch", at_least(1)},
      }};
  return s;
}

const Section<TrainConfig>& train_section() {
  using T = TrainConfig;
  static const Section<T> s{
      "train", "the training run",
      {
          {"steps", &T::steps, "1000", "optimizer steps", at_least(1)},
          {"init_from", &T::init_from, "",
           "fine-tune: a pretrained checkpoint whose weights (by name) start the run; fresh optimizer state, step 0"},
          {"grad_accum", &T::grad_accum, "1", "micro-batches per optimizer step", at_least(1)},
          {"eval_every", &T::eval_every, "100", "steps between validations; 0 = never", at_least(0)},
          {"eval_batches", &T::eval_batches, "20", "batches per validation", at_least(1)},
          {"log_every", &T::log_every, "10", "steps between metric lines", at_least(1)},
          {"ckpt_every", &T::ckpt_every, "0", "steps between checkpoints; 0 = only at the end", at_least(0)},
          {"out_dir", &T::out_dir, "runs/default", "run directory (metrics, checkpoints, config)",
           custom(check_not_empty)},
          {"seed", &T::seed, "1337", "seed of init, data order and dropout", at_least(0)},
          {"device", &T::device, "cpu", "where to train", custom(check_device, "cpu, cuda or cuda:N")},
          {"precision", &T::precision, "fp32",
           "fp32, or bf16: matmuls take bf16 operands and accumulate in f32; weights, optimizer state, norms, "
           "softmax and the loss stay f32 (on the CPU bf16 is emulated and slower than fp32)",
           one_of("fp32|bf16")},
          {"peak_flops", &T::peak_flops, "1e11", "peak FLOP/s of the device, the roof for MFU", above(0)},
          {"threads", &T::threads, "0", "CPU threads; 0 = all cores", at_least(0)},
          {"attn_entropy", &T::attn_entropy, "true",
           "log attention entropy per layer and head (and its min, max, normalised value, sink mass) at each "
           "logged step, from that step's training forward; null for layers without one"},
          {"dist", &T::dist, "auto",
           "data-parallel backend (auto = mpi when started by mpirun/srun, nccl for CUDA; none = one process)",
           one_of("auto|none|mpi|nccl")},
          {"bucket_mb", &T::bucket_mb, "25", "data parallel: MiB of gradients per all-reduce bucket", above(0)},
          {"zero1", &T::zero1, "false", "data parallel: shard the optimizer state across ranks (ZeRO-1)"},
          {"comm_timeout", &T::comm_timeout, "600",
           "data parallel: seconds a collective may wait before the job fails; 0 = forever", at_least(0)},
      }};
  return s;
}

const Section<LoraConfig>& lora_section() {
  using L = LoraConfig;
  static const Section<L> s{
      "lora", "adapters for fine-tuning (base weights frozen); see configs/examples/lora_finetune.ini",
      {
          {"kind", &L::kind, "none",
           "adapter: none = train every parameter; lora = W + s B A; nola = A, B from fixed random bases "
           "(only coefficients train); difflora = lora plus a low-rank negative attention map",
           one_of("none|lora|nola|difflora")},
          {"targets", &L::targets, "attn.wq,attn.wv",
           "Linear layers to adapt: module-path suffixes, * a glob (attn.w*, mlp.*, blocks.1.*)"},
          {"r", &L::r, "8", "rank of the adapter", at_least(1)},
          {"alpha", &L::alpha, "16", "scale numerator: s = alpha/r (alpha/sqrt(r) with rslora)", above(0)},
          {"dropout", &L::dropout, "0.0", "dropout on the adapter's input", right_open(0, 1)},
          {"rslora", &L::rslora, "false", "rank-stabilised scale alpha/sqrt(r) (rsLoRA)"},
          {"nola_bases", &L::nola_bases, "64", "nola: random bases per factor (trained coefficients per factor)",
           at_least(1)},
          {"nola_seed", &L::nola_seed, "0", "nola: seed the bases are regenerated from (they are never saved)",
           at_least(0)},
          {"difflora_lambda_init", &L::difflora_lambda_init, "-1",
           "difflora: lambda_init; -1 = 0.8 - 0.6 exp(-0.3 (layer - 1))", right_open(-1, 1)},
          {"save", &L::save, "adapter",
           "checkpoint: adapter = adapter parameters and their optimizer state only (needs train.init_from); "
           "full = every parameter",
           one_of("adapter|full")},
      }};
  return s;
}

namespace {
std::string check_schedule(std::string_view v) {
  if (v.empty()) return "";
  std::vector<std::string> items;
  try {
    if (!parse_list(v, items).empty()) return "STEP:LAMBDA items separated by commas, e.g. 0:0,1000:0.01";
    LocalityOptions::parse_schedule(items);
  } catch (const Error& e) {
    return std::string("STEP:LAMBDA items separated by commas with increasing steps and lambda >= 0 (") +
           e.what() + ")";
  }
  return "";
}
}  // namespace

const Section<EntropyBandConfig>& entropy_band_section() {
  using E = EntropyBandConfig;
  static const Section<E> s{
      "entropy_band",
      "entropy band regulariser (Jha & Reagen, Entropy-Guided Attention for Private LLMs): rows whose attention "
      "entropy leaves theta*log T +- tolerance*log T pay the squared deviation; theta is learned per head",
      {
          {"weight", &E::weight, "0", "lambda, the penalty's weight in the loss; 0 = off (the paper: 1e-5 with sum)",
           at_least(0)},
          {"tolerance", &E::tolerance, "0.2", "gamma: half-width of the penalty-free band, a fraction of log T",
           at_least(0)},
          {"threshold_init", &E::threshold_init, "0.5", "initial threshold theta of every head, a fraction of log T",
           between(0, 1)},
          {"reduction", &E::reduction, "mean",
           "over batch and query rows: mean, or sum as in the paper's code (scales with batch and length)",
           one_of("mean|sum")},
          {"layers", &E::layers, "all", "layer indices to regularise, or all (every layer with an attention entropy)"},
      }};
  return s;
}

const Section<AemConfig>& aem_section() {
  using A = AemConfig;
  static const Section<A> s{
      "aem", "attention entropy maximisation: adds -weight * mean attention entropy of the chosen layers",
      {
          {"weight", &A::weight, "0", "lambda; 0 = off", at_least(0)},
          {"layers", &A::layers, "all", "layer indices, or all (every layer with an attention entropy)"},
      }};
  return s;
}

const Section<LocalityConfig>& locality_section() {
  using L = LocalityConfig;
  static const Section<L> s{
      "locality",
      "group-sparsity locality penalty (Diederich, Localist LLMs): sum over key blocks of the l2 norm of each "
      "row's attention weights in the block; its layers run the composed attention path",
      {
          {"weight", &L::weight, "0", "lambda (the locality dial) when schedule is empty; 0 = off", at_least(0)},
          {"schedule", &L::schedule, "",
           "lambda over steps, piecewise linear: STEP:LAMBDA,... (constant outside); replaces weight; "
           "may be changed on --resume",
           custom(check_schedule, "STEP:LAMBDA,... with increasing steps")},
          {"block", &L::block, "16", "keys per block", at_least(1)},
          {"reduction", &L::reduction, "mean", "over batch and query rows: mean or sum", one_of("mean|sum")},
          {"layers", &L::layers, "all", "layer indices, or all (every softmax or moh layer)"},
      }};
  return s;
}

const Section<SigmaReparamConfig>& sigma_reparam_section() {
  using S = SigmaReparamConfig;
  static const Section<S> s{
      "sigma_reparam",
      "sigmaReparam (Zhai et al. 2023): W -> gamma / sigma(W) * W on chosen Linears, against attention entropy collapse",
      {
          {"targets", &S::targets, "",
           "Linears to reparameterise: module-path suffixes, * a glob (as lora.targets), e.g. "
           "attn.wq,attn.wk,attn.wv,attn.wo,mlp.*; a pattern matching no Linear is an error; empty = off",
           custom(check_module_patterns)},
          {"gamma_init", &S::gamma_init, "sigma",
           "start of the learnable gamma: sigma = sigma(W) at init, so W_hat = W (the authors' PyTorch code); "
           "one = 1 (the paper's text, their JAX code)",
           one_of("sigma|one")},
      }};
  return s;
}

std::string range_text(const Check& c) {
  auto num = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", x);
    return std::string(buf);
  };
  const bool has_lo = std::isfinite(c.lo), has_hi = std::isfinite(c.hi);
  if (has_lo && has_hi)
    return "in " + std::string(c.lo_open ? "(" : "[") + num(c.lo) + ", " + num(c.hi) + (c.hi_open ? ")" : "]");
  if (has_lo) return (c.lo_open ? "> " : ">= ") + num(c.lo);
  if (has_hi) return (c.hi_open ? "< " : "<= ") + num(c.hi);
  return "";
}

}  // namespace attnlab::config
