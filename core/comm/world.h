#pragma once
// The job's world communicator: which backend (train.dist = auto|none|mpi|nccl),
// how many processes the launcher started, and the one communicator per process.
//
// The MPI and NCCL backends live in a separate library (attnlab_mpi, linked by
// the CLI and the MPI tests) that registers them here; the core library never
// touches MPI, so a single process needs neither mpirun nor MPI_Init.
#include <functional>
#include <memory>
#include <string>

#include "core/comm/communicator.h"

namespace attnlab {

// Builds the world communicator of a backend; `device` is where the tensors live.
using CommFactory = std::function<std::shared_ptr<Communicator>(Device device)>;
void register_comm_backend(const std::string& name, CommFactory factory);
bool has_comm_backend(const std::string& name);

// The number of processes a launcher started, read from its environment
// (mpirun: OMPI_COMM_WORLD_SIZE; MPICH/Hydra and srun --mpi=pmi2: PMI_SIZE;
// srun: SLURM_STEP_NUM_TASKS); 1 when started directly.
int launched_world_size();

// "none", "mpi" or "nccl" for a train.dist value: auto picks none for one
// process, else nccl for CUDA tensors (when built with NCCL) and mpi otherwise.
std::string resolve_dist(const std::string& dist, Device device);

// The world communicator, created on the first call and shared afterwards.
// A later call must ask for the same backend.
std::shared_ptr<Communicator> world_communicator(const std::string& dist, Device device, double timeout_s);
// The world made so far, or null.
std::shared_ptr<Communicator> current_world();

// When this process is one rank of several, ends the whole job with `message`
// prefixed by this rank (Communicator::abort); otherwise returns.
void abort_job_if_distributed(const std::string& message);

}  // namespace attnlab
