// All-reduce bandwidth of the communicators (not a test).
//   mpirun -np 2 build/bench/bench_allreduce                  MPI, CPU tensors
//   build/bench/bench_allreduce --backend nccl                NCCL, one GPU, one rank
//   mpirun -np N build/bench/bench_allreduce --backend nccl   NCCL, a GPU per rank
// For each size: the attnlab all_reduce (MPI: MPI_Iallreduce + a polling wait),
// the plain blocking MPI_Allreduce next to it, and reduce-scatter + all-gather
// (ZeRO-1's pattern). algbw = bytes / time; busbw = algbw * 2 (n - 1) / n, the
// convention of nccl-tests: what each link carries in a ring.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/comm/world.h"

using namespace attnlab;

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Seconds per call of `f`: the best of 5 trials of `iters` calls (other jobs on
// a small machine only ever slow a trial down), averaged over the ranks.
template <class F>
double time_per_call(Communicator& c, int iters, F&& f) {
  for (int i = 0; i < 3; ++i) f();
  double best = 1e30;
  for (int trial = 0; trial < 5; ++trial) {
    c.barrier();
    double t0 = now();
    for (int i = 0; i < iters; ++i) f();
    best = std::min(best, (now() - t0) / iters);
  }
  return c.size() > 1 ? c.sum(best) / c.size() : best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string backend = "mpi";
  double max_mb = 64;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) backend = argv[++i];
    else if (a == "--max_mb" && i + 1 < argc) max_mb = std::atof(argv[++i]);
    else {
      std::fprintf(stderr, "usage: bench_allreduce [--backend mpi|nccl] [--max_mb 64]\n");
      return 2;
    }
  }
  try {
    Device dev = backend == "nccl" ? Device::cuda() : Device::cpu();
    auto comm = world_communicator(backend, dev, 300);
    const int n = comm->size();
    const bool root = comm->rank() == 0;
    if (root) {
      std::printf("attnlab all-reduce bandwidth: backend %s, %d rank%s, f32\n", comm->backend().c_str(), n,
                  n > 1 ? "s" : "");
      std::printf("%10s %8s | %10s %8s %8s | %10s %8s | %10s %8s\n", "bytes", "iters", "all_reduce", "algbw",
                  "busbw", "MPI_Allred", "busbw", "rs+ag", "busbw");
      std::printf("%10s %8s | %10s %8s %8s | %10s %8s | %10s %8s\n", "", "", "us", "GB/s", "GB/s", "us", "GB/s",
                  "us", "GB/s");
    }
    const double bus = n > 1 ? 2.0 * (n - 1) / n : 1.0;
    for (int64_t bytes = 4096; bytes <= static_cast<int64_t>(max_mb * (1 << 20)); bytes *= 4) {
      const int64_t count = bytes / 4 / n * n;
      const int iters = static_cast<int>(std::clamp<int64_t>((int64_t{1} << 28) / bytes, 4, 500));
      Tensor t = Tensor::ones({count}, DType::f32, dev);
      double ar = time_per_call(*comm, iters, [&] { comm->all_reduce(t); });
      double raw = 0;
      if (comm->backend() == "mpi") {
        float* p = t.data<float>();
        raw = time_per_call(*comm, iters, [&] {
          MPI_Allreduce(MPI_IN_PLACE, p, static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        });
      }
      Tensor shard = Tensor::zeros({count / n}, DType::f32, dev);
      Tensor mine = t.slice(comm->rank() * (count / n), (comm->rank() + 1) * (count / n));
      double rsag = time_per_call(*comm, iters, [&] {
        comm->reduce_scatter(t, shard);
        comm->all_gather(mine, t);
      });
      auto gbs = [&](double s) { return s > 0 ? static_cast<double>(count * 4) / s / 1e9 : 0.0; };
      if (root)
        std::printf("%10lld %8d | %10.1f %8.2f %8.2f | %10.1f %8.2f | %10.1f %8.2f\n",
                    static_cast<long long>(count * 4), iters, ar * 1e6, gbs(ar), gbs(ar) * bus, raw * 1e6,
                    gbs(raw) * bus, rsag * 1e6, gbs(rsag) * bus);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_allreduce: error: %s\n", e.what());
    abort_job_if_distributed(e.what());
    return 1;
  }
  return 0;
}
