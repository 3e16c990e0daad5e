#pragma once
// Ablations: one base config, many variants (each a set of overrides), one
// table and one plot. The ablation file:
//
//   [ablate]
//   base = ../demo.ini              # relative to this file
//   out_dir = runs/ablate/attention  # one run dir per variant inside
//   parallel = 1                     # variants trained at a time (cores are split)
//   set = train.steps=300, train.eval_every=50   # overrides for every variant
//
//   [variant.nope]
//   attn.default.pos = nope          # section.key = value, as on the command line
//
// Every variant's config is validated before the first run starts.
#include <string>
#include <vector>

namespace attnlab {

struct AblationVariant {
  std::string name;
  std::vector<std::string> overrides;  // "--section.key=value"
};

struct AblationSpec {
  std::string file;     // the ablation file, for messages
  std::string base;     // resolved path of the base config
  std::string out_dir;
  int parallel = 1;
  std::vector<std::string> common;  // overrides for every variant
  std::vector<AblationVariant> variants;
};

// Parses and validates (each variant's full config loads); errors name file and line.
AblationSpec load_ablation(const std::string& path);

struct AblationOptions {
  std::string exe;          // the attnlab binary that trains each variant
  std::string plot_script;  // scripts/plot.py
  bool quiet = false;
};

// Trains every variant (as child processes of `exe`), then writes out_dir/results.md
// and out_dir/val_loss.png. Returns the number of variants that failed.
int run_ablation(const AblationSpec& spec, const AblationOptions& opts);

}  // namespace attnlab
