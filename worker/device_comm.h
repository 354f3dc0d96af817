// The workers' NCCL communicator for a --device=cuda job with --sync=allreduce|hybrid
// (docs/collective.md "NCCL", docs/training.md "GPU workers").
//
// Worker 0 makes the NCCL unique id and hands it to the others through the coordinator's
// rendezvous (worker/rendezvous.h), so any launcher works; every worker then joins the
// communicator on its current CUDA device. An operation that fails or does not finish
// within `op_timeout` aborts the communicator (ncclCommAbort, in NcclCommunicator), so a
// dead or hung rank ends the job within that bound instead of hanging it.
//
// Thread safety: call from the worker's main thread, after its CUDA device was chosen.
#pragma once

#include <memory>

#include "collective/communicator.h"
#include "common/clock.h"
#include "common/status.h"
#include "worker/client.h"

namespace tessera::worker {

// Whether every worker of the job computes on a GPU of its own (NCCL refuses two ranks
// on one device). Every worker contributes "<host>/<PCI bus id of cuda_device>" to an
// all-gather over `workers` (the workers' host communicator), so all get the same
// answer, at any job size. Errors: the all-gather's (naming it), or a CUDA error naming
// the device.
Result<bool> WorkersHaveDistinctGpus(collective::Communicator& workers, int cuda_device, Duration timeout);

// Every worker calls it once; returns a communicator of num_workers ranks (this worker is
// rank worker_index) on CUDA device `cuda_device`. FailedPrecondition in a build without
// NCCL; the id exchange's or NCCL's error (naming this worker) otherwise.
Result<std::unique_ptr<collective::Communicator>> ConnectNccl(Client& client, int worker_index, int num_workers,
                                                              int cuda_device, Duration op_timeout);

}  // namespace tessera::worker
