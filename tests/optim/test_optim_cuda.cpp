// AdamW, SGD and gradient clipping on CUDA parameters (one multi-tensor launch
// per group, core/cuda/optim.cu) against the same steps on the CPU, and the
// data-parallel path (gradient buckets, ZeRO-1) with CUDA tensors. Every test
// skips without a CUDA device.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/comm/single.h"
#include "core/cuda_testing.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/sgd.h"
#include "train/ddp.h"

using namespace attnlab;
using namespace attnlab::cuda_testing;

namespace {

// Shapes with one tensor spanning several chunks (core/cuda/multi_tensor.h).
const std::vector<Shape> kShapes = {{3, 5}, {70001}, {1}, {4, 4, 2}, {7}};

struct Model {
  NamedVars params;
  std::vector<Var> vars;
};

Model make_model(DType dt, Device dev) {
  Model m;
  for (size_t i = 0; i < kShapes.size(); ++i) {
    Var v(cpu_uniform(kShapes[i], 10 + i, -1, 1, DType::f64).to(dt).to(dev), true);
    m.params.emplace_back("layer" + std::to_string(i) + (kShapes[i].size() > 1 ? ".weight" : ".bias"), v);
    m.vars.push_back(v);
  }
  return m;
}

// Step k's gradients; parameter 2 gets none on odd steps (the optimizer skips it).
void set_grads(Model& m, int step, double scale = 1.0) {
  for (size_t i = 0; i < m.vars.size(); ++i) {
    if (i == 2 && step % 2 == 1) {
      m.vars[i].grad() = Tensor();
      continue;
    }
    Tensor g = cpu_uniform(m.vars[i].shape(), 1000 * step + i, -scale, scale, DType::f64);
    m.vars[i].grad() = g.to(m.vars[i].dtype()).to(m.vars[i].device());
  }
}

double rtol_for(DType dt) { return dt == DType::f64 ? 1e-13 : 1e-6; }

void expect_same_params(const Model& gpu, const Model& cpu, DType dt, const std::string& what) {
  for (size_t i = 0; i < cpu.vars.size(); ++i) {
    ASSERT_TRUE(gpu.vars[i].device().is_cuda());
    expect_close(gpu.vars[i].data(), cpu.vars[i].data(), rtol_for(dt), rtol_for(dt),
                 what + " " + dtype_name(dt) + " " + cpu.params[i].first);
  }
}

void run_parity(const std::string& what, const std::function<std::unique_ptr<Optimizer>(const NamedVars&)>& make) {
  for (DType dt : {DType::f32, DType::f64}) {
    Model cpu = make_model(dt, Device::cpu()), gpu = make_model(dt, kGpu);
    auto opt_cpu = make(cpu.params), opt_gpu = make(gpu.params);
    for (int step = 0; step < 4; ++step) {
      set_grads(cpu, step);
      set_grads(gpu, step);
      opt_cpu->step();
      opt_gpu->step();
    }
    expect_same_params(gpu, cpu, dt, what);
    auto sc = opt_cpu->state(), sg = opt_gpu->state();
    for (const auto& [name, m] : sc)
      for (const auto& [k, t] : m) expect_close(sg.at(name).at(k), t, rtol_for(dt), rtol_for(dt), name + "/" + k);
  }
}

}  // namespace

TEST(OptimCuda, AdamWMatchesTheCpuOverSeveralSteps) {
  SKIP_WITHOUT_CUDA();
  run_parity("adamw", [](const NamedVars& p) {
    AdamWOptions o;
    o.lr = 0.05;
    o.weight_decay = 0.1;  // two groups: matrices decay, vectors do not
    return std::make_unique<AdamW>(p, o);
  });
  // Explicit groups with different lr scales.
  run_parity("adamw groups", [](const NamedVars& p) {
    std::vector<ParamGroup> groups{{{p[0], p[1]}, 0.2, 1.0}, {{p[2], p[3], p[4]}, 0.0, 0.5}};
    return std::make_unique<AdamW>(groups, AdamWOptions{});
  });
}

TEST(OptimCuda, SGDMatchesTheCpuOverSeveralSteps) {
  SKIP_WITHOUT_CUDA();
  for (double momentum : {0.0, 0.9})
    for (bool nesterov : {false, true}) {
      if (nesterov && momentum == 0) continue;
      run_parity("sgd momentum " + std::to_string(momentum) + (nesterov ? " nesterov" : ""),
                 [=](const NamedVars& p) {
                   SGDOptions o;
                   o.lr = 0.1;
                   o.momentum = momentum;
                   o.nesterov = nesterov;
                   o.dampening = nesterov ? 0.0 : 0.1;
                   o.weight_decay = 0.01;
                   return std::make_unique<SGD>(p, o);
                 });
    }
}

TEST(OptimCuda, ClipGradNormMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f32, DType::f64}) {
    for (double max_norm : {1e6, 0.5}) {  // untouched, then clipped
      Model cpu = make_model(dt, Device::cpu()), gpu = make_model(dt, kGpu);
      set_grads(cpu, 1);
      set_grads(gpu, 1);
      double n_cpu = clip_grad_norm(cpu.vars, max_norm), n_gpu = clip_grad_norm(gpu.vars, max_norm);
      EXPECT_NEAR(n_gpu, n_cpu, 1e-12 * n_cpu) << dtype_name(dt);
      for (size_t i = 0; i < cpu.vars.size(); ++i) {
        if (!cpu.vars[i].grad().defined()) continue;
        expect_close(gpu.vars[i].grad(), cpu.vars[i].grad(), rtol_for(dt), 0, "clipped grad " + cpu.params[i].first);
      }
      // Deterministic: the same gradients give the same bits.
      EXPECT_EQ(grad_norm(gpu.vars), grad_norm(gpu.vars));
    }
  }
}

TEST(OptimCuda, DataParallelWithZero1OnCudaTensors) {
  SKIP_WITHOUT_CUDA();
  // One process: the buckets, the reduce-scatter into the shard and ZeRO-1's
  // views all live on the device; the step equals the plain CPU optimizer's.
  for (bool zero1 : {false, true}) {
    Model cpu = make_model(DType::f32, Device::cpu()), gpu = make_model(DType::f32, kGpu);
    auto make = [](std::vector<ParamGroup> g) -> std::unique_ptr<Optimizer> {
      return std::make_unique<AdamW>(std::move(g), AdamWOptions{});
    };
    AdamW opt_cpu(make_param_groups(cpu.params, 0.01), AdamWOptions{});
    DataParallelOptions o;
    o.bucket_mb = 0.1;  // several buckets
    o.zero1 = zero1;
    DataParallel dp(std::make_shared<SingleCommunicator>(), gpu.params, make_param_groups(gpu.params, 0.01), make, o);
    for (int step = 0; step < 3; ++step) {
      set_grads(cpu, 0, 3.0);
      dp.prepare_backward(true);
      for (size_t i = 0; i < gpu.vars.size(); ++i) {  // as backward accumulates: into the bucket views, if any
        Tensor& g = gpu.vars[i].grad();
        if (g.defined()) g.copy_(cpu.vars[i].grad());
        else g = cpu.vars[i].grad().to(kGpu);
      }
      dp.finish_backward();
      double n_cpu = clip_grad_norm(cpu.vars, 1.0), n_gpu = dp.clip_grad_norm(1.0);
      EXPECT_NEAR(n_gpu, n_cpu, 1e-5 * n_cpu);
      opt_cpu.step();
      dp.step();
      opt_cpu.zero_grad();
      dp.zero_grad();
    }
    expect_same_params(gpu, cpu, DType::f32, zero1 ? "zero1" : "ddp");
  }
}
