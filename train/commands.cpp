#include "train/commands.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/comm/world.h"
#include "core/error.h"
#include "data/prepare.h"
#include "data/tokenizer.h"
#include "train/ablate.h"
#include "train/generate.h"
#include "layers/lora/adapters.h"
#include "train/finetune.h"
#include "train/model_config.h"
#include "train/trainer.h"

namespace attnlab {

namespace po = boost::program_options;

namespace {

// Parses `args` against `desc`; Boost's errors become one attnlab::Error line.
// Returns false when --help was asked for (and printed).
bool parse_args(const char* cmd, const std::vector<std::string>& args, po::options_description& desc,
                po::variables_map& vm, const po::positional_options_description* pos = nullptr) {
  desc.add_options()("help,h", "show this help");
  try {
    po::command_line_parser parser(args);
    parser.options(desc);
    if (pos) parser.positional(*pos);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      std::cout << "usage: attnlab " << cmd << " [options]\n" << desc;
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw Error(detail::cat(e.what(), " (see attnlab ", cmd, " --help)"));
  }
  return true;
}

}  // namespace

int cmd_train(std::vector<std::string> args) {
  std::vector<std::string> overrides = take_config_options(args);
  po::options_description desc("attnlab train CONFIG.ini [--section.key=value ...]\n\noptions");
  desc.add_options()("config", po::value<std::string>(), "the INI file")(
      "resume", po::value<std::string>(), "continue the run in this directory from its checkpoint")(
      "quiet,q", po::bool_switch(), "no progress display")(
      "stop_after", po::value<int64_t>()->default_value(0),
      "stop with a checkpoint after this step (the schedule still spans train.steps); resume with --resume");
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  bool wants_help = std::find(args.begin(), args.end(), "--help") != args.end() ||
                    std::find(args.begin(), args.end(), "-h") != args.end();
  if (!parse_args("train", args, desc, vm, &pos)) {
    if (wants_help) std::cout << "\nconfiguration keys (set in the INI file or as --section.key=value):\n\n"
                              << config_help();
    return 0;
  }
  TrainerOptions opts;
  opts.quiet = vm["quiet"].as<bool>();
  opts.stop_after = vm["stop_after"].as<int64_t>();
  ATTNLAB_CHECK(opts.stop_after >= 0, "--stop_after ", opts.stop_after, ": expected >= 0");
  // A rank that fails ends the whole job with its message; the others would
  // otherwise wait in their next collective.
  try {
    std::unique_ptr<Trainer> trainer;
    if (vm.count("resume")) {
      ATTNLAB_CHECK(!vm.count("config"), "--resume takes its config from the run's checkpoint; drop ",
                    vm["config"].as<std::string>());
      trainer = Trainer::resume(vm["resume"].as<std::string>(), overrides, opts);
    } else {
      ATTNLAB_CHECK(vm.count("config"), "no config file given (usage: attnlab train CONFIG.ini)");
      trainer = std::make_unique<Trainer>(load_config(vm["config"].as<std::string>(), overrides), opts);
    }
    const bool rank0 = trainer->comm().rank() == 0;
    if (rank0) {
      std::printf("attnlab train: %lld parameters, %d rank%s (%s), run dir %s",
                  static_cast<long long>(trainer->model().num_parameters()), trainer->comm().size(),
                  trainer->comm().size() > 1 ? "s" : "", trainer->comm().backend().c_str(),
                  trainer->config().train.out_dir.c_str());
      if (trainer->config().lora.kind != "none") {
        int64_t n = 0;
        for (auto& [name, p] : trainer->model().trainable_parameters()) n += p.numel();
        std::printf("; %lld trainable (%s adapters)", static_cast<long long>(n), trainer->config().lora.kind.c_str());
      }
      std::printf("\n");
    }
    TrainSummary s = trainer->run();
    if (!rank0) return 0;
    std::printf("attnlab train: %lld steps, final loss %.4f", static_cast<long long>(s.steps), s.last_loss);
    if (!std::isnan(s.last_val_loss)) std::printf(", val loss %.4f", s.last_val_loss);
    std::printf(", %.0f tok/s; checkpoint %s/ckpt.h5\n", s.tokens_per_s, s.run_dir.c_str());
  } catch (const Error& e) {
    abort_job_if_distributed(e.what());
    throw;
  } catch (const std::exception& e) {
    abort_job_if_distributed(detail::cat("internal error: ", e.what()));
    throw;
  }
  return 0;
}

int cmd_prepare(const std::vector<std::string>& args) {
  po::options_description desc("attnlab prepare: tokenize a text file into train/val token shards\n\noptions");
  desc.add_options()("input", po::value<std::string>()->required(), "the text file")(
      "tokenizer", po::value<std::string>()->default_value("byte"), "byte | bpe:N (train a BPE of N tokens)")(
      "out", po::value<std::string>()->required(), "output directory")(
      "val_fraction", po::value<double>()->default_value(0.1), "share of the text (its end) held out for val")(
      "format", po::value<std::string>()->default_value("h5"), "h5 (HDF5) | bin (llm.c shards)");
  po::variables_map vm;
  if (!parse_args("prepare", args, desc, vm)) return 0;
  PrepareResult r = prepare_dataset(vm["input"].as<std::string>(), vm["tokenizer"].as<std::string>(),
                                    vm["out"].as<std::string>(), vm["val_fraction"].as<double>(),
                                    vm["format"].as<std::string>());
  std::printf("%s\n", r.summary().c_str());
  return 0;
}

int cmd_sample(const std::vector<std::string>& args) {
  po::options_description desc("attnlab sample: generate text from a checkpoint\n\noptions");
  desc.add_options()("ckpt", po::value<std::string>()->required(), "checkpoint (RUN_DIR/ckpt.h5)")(
      "prompt", po::value<std::string>()->default_value("\n"), "text to continue")(
      "tokens", po::value<int64_t>()->default_value(200), "tokens to generate")(
      "temperature", po::value<double>()->default_value(0.8), "softmax temperature (0 = greedy)")(
      "top_k", po::value<int64_t>()->default_value(40), "sample among the k most likely (0 = all)")(
      "seed", po::value<uint64_t>()->default_value(0), "sampling seed")(
      "tokenizer", po::value<std::string>(), "override the config's data.tokenizer")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or cuda:N");
  po::variables_map vm;
  if (!parse_args("sample", args, desc, vm)) return 0;
  const Device device = usable_device(vm["device"].as<std::string>(), "--device");
  SampleOptions so;
  so.tokens = vm["tokens"].as<int64_t>();
  so.temperature = vm["temperature"].as<double>();
  so.top_k = vm["top_k"].as<int64_t>();
  ATTNLAB_CHECK(so.tokens >= 0, "--tokens ", so.tokens, ": expected >= 0");
  ATTNLAB_CHECK(so.temperature >= 0, "--temperature ", so.temperature, ": expected >= 0");
  ATTNLAB_CHECK(so.top_k >= 0, "--top_k ", so.top_k, ": expected >= 0");
  Config cfg;
  std::unique_ptr<GPT> model = load_model(load_checkpoint(vm["ckpt"].as<std::string>(), false), &cfg);
  model->to(device);
  auto tok = load_tokenizer(vm.count("tokenizer") ? vm["tokenizer"].as<std::string>() : cfg.data.tokenizer);
  ATTNLAB_CHECK(tok->vocab_size() <= model->config().vocab_size, "sample: tokenizer ", tok->name(), " has ",
                tok->vocab_size(), " tokens but the model only ", model->config().vocab_size);
  std::string prompt = vm["prompt"].as<std::string>();
  Generator gen(vm["seed"].as<uint64_t>());
  std::vector<uint32_t> out = generate(*model, tok->encode(prompt), so, gen);
  std::printf("%s%s\n", prompt.c_str(), tok->decode(out).c_str());
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  po::options_description desc("attnlab eval: validation loss and perplexity of a checkpoint\n\noptions");
  desc.add_options()("ckpt", po::value<std::string>()->required(), "checkpoint (RUN_DIR/ckpt.h5)")(
      "val", po::value<std::string>(), "val shard (default: the config's data.val)")(
      "batches", po::value<int64_t>()->default_value(0), "batches to average (0 = one full pass)")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu, cuda or cuda:N");
  po::variables_map vm;
  if (!parse_args("eval", args, desc, vm)) return 0;
  const Device device = usable_device(vm["device"].as<std::string>(), "--device");
  Config cfg;
  std::unique_ptr<GPT> model = load_model(load_checkpoint(vm["ckpt"].as<std::string>(), false), &cfg);
  model->to(device);
  std::string val = vm.count("val") ? vm["val"].as<std::string>() : cfg.data.val;
  ATTNLAB_CHECK(!val.empty(), "eval: the checkpoint's config has no data.val; pass --val SHARD");
  LoaderOptions lo;
  lo.batch = cfg.data.batch_size;
  lo.seq_len = cfg.data.seq_len;
  lo.mode = LoaderMode::val;
  TokenLoader loader(val, lo);
  int64_t n = vm["batches"].as<int64_t>();
  if (n <= 0) n = std::max<int64_t>(loader.batches_per_pass(), 1);
  NoGradGuard no_grad;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    Batch b = loader.next().to(device);
    total += model->loss(b.x, b.y).data().item<double>();
  }
  double loss = total / static_cast<double>(n);
  std::printf("val_loss %.6f  perplexity %.4f  (%lld batches of %d x %d tokens from %s)\n", loss, std::exp(loss),
              static_cast<long long>(n), cfg.data.batch_size, cfg.data.seq_len, val.c_str());
  return 0;
}

}  // namespace attnlab

namespace attnlab {

int cmd_ablate(const std::vector<std::string>& args) {
  po::options_description desc("attnlab ablate ABLATION.ini: train every variant, then one table and one plot\n\noptions");
  desc.add_options()("file", po::value<std::string>(), "the ablation file")(
      "parallel", po::value<int>(), "override [ablate] parallel")("out_dir", po::value<std::string>(),
                                                                   "override [ablate] out_dir")(
      "quiet,q", po::bool_switch(), "no progress lines");
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  if (!parse_args("ablate", args, desc, vm, &pos)) return 0;
  ATTNLAB_CHECK(vm.count("file"), "no ablation file given (usage: attnlab ablate configs/ablations/attention.ini)");
  AblationSpec spec = load_ablation(vm["file"].as<std::string>());
  if (vm.count("parallel")) {
    spec.parallel = vm["parallel"].as<int>();
    ATTNLAB_CHECK(spec.parallel >= 1, "--parallel ", spec.parallel, ": expected >= 1");
  }
  if (vm.count("out_dir")) spec.out_dir = vm["out_dir"].as<std::string>();
  AblationOptions opts;
  opts.exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const char* src = std::getenv("ATTNLAB_SOURCE_DIR");
  opts.plot_script = std::string(src ? src : ATTNLAB_SOURCE_DIR) + "/scripts/plot.py";
  opts.quiet = vm["quiet"].as<bool>();
  int failed = run_ablation(spec, opts);
  ATTNLAB_CHECK(failed == 0, failed, " of ", spec.variants.size(), " variants failed; see ", spec.out_dir,
                "/results.md and each variant's train.log");
  return 0;
}

}  // namespace attnlab

namespace attnlab {

int cmd_merge(const std::vector<std::string>& args) {
  po::options_description desc(
      "attnlab merge: fold a LoRA / NOLA adapter checkpoint into its base, writing a plain checkpoint\n\noptions");
  desc.add_options()("base", po::value<std::string>()->required(), "the base checkpoint the adapter was trained from")(
      "adapter", po::value<std::string>()->required(), "the adapter checkpoint (lora.save = adapter)")(
      "out", po::value<std::string>()->required(), "the merged checkpoint to write");
  po::variables_map vm;
  if (!parse_args("merge", args, desc, vm)) return 0;
  const std::string base_path = vm["base"].as<std::string>(), adapter_path = vm["adapter"].as<std::string>(),
                    out = vm["out"].as<std::string>();
  Checkpoint adapter = load_checkpoint(adapter_path, false);
  ATTNLAB_CHECK(is_adapter_checkpoint(adapter), "--adapter ", adapter_path,
                " is not an adapter checkpoint (one written with lora.kind != none and lora.save = adapter)");
  Config cfg = parse_config_text(adapter.config, adapter_path);
  // DiffLoRA's negative attention map is a second softmax over new queries and
  // keys: no weight of a plain softmax layer can hold it, so it is never folded.
  ATTNLAB_CHECK(cfg.lora.kind != "difflora", "--adapter ", adapter_path, " is a DiffLoRA adapter: its negative ",
                "attention map cannot be folded into softmax attention weights; use the adapter checkpoint itself ",
                "(attnlab sample/eval --ckpt ", adapter_path, " load it with its base)");
  Checkpoint base = load_checkpoint(base_path, false);
  ATTNLAB_CHECK(!is_adapter_checkpoint(base), "--base ", base_path, " is itself an adapter checkpoint");
  auto fp = adapter.meta.find("base_fingerprint");
  ATTNLAB_CHECK(fp != adapter.meta.end() && fp->second == weights_fingerprint(base.params), "--base ", base_path,
                " is not the base this adapter was trained from (train.init_from = ", cfg.train.init_from,
                "): its weights differ");
  BuiltModel built = build_model(cfg, false);
  load_base_weights(*built.model, base.params, "--base " + base_path);
  load_adapter_weights(*built.model, adapter.params, "--adapter " + adapter_path);

  Checkpoint merged;
  merged.params = merged_state_dict(*built.model);
  Config plain = cfg;  // the same model, without adapters or a base to load
  plain.lora = default_config().lora;
  plain.train.init_from.clear();
  merged.config = resolved_ini(plain);
  merged.meta = {{"step", adapter.meta.count("step") ? adapter.meta.at("step") : 0}, {"merged", 1}};
  save_checkpoint(out, merged);
  std::printf("attnlab merge: %s + %s (%s, r = %d) -> %s\n", base_path.c_str(), adapter_path.c_str(),
              cfg.lora.kind.c_str(), cfg.lora.r, out.c_str());
  return 0;
}

}  // namespace attnlab
