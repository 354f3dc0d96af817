// GradSync: the worker's side of --sync=allreduce and --sync=hybrid (docs/collective.md).
//
// Every parameter is routed by collective::RouteParams: all-reduced ones have their
// gradients fused into buckets (collective::Bucketer, --bucket_mb) as backward produces
// them (the model's gradient-ready hook calls OnGradReady), each bucket all-reduced (mean)
// on the communicator's thread while backward goes on; FinishStep then waits for them and
// applies the optimizer locally with the servers' code (kernels::ApplyUpdate, per
// chunk of --chunk_bytes like the servers, so clipping and every update match bsp). The
// other parameters (sparse tables in hybrid) stay with the trainer's push/pull path.
// The gradients of fused parameters are re-homed into their bucket's flat buffer
// (Bucketer::AdoptBucketMemory: Parameter::grad becomes a view of it), so backward writes
// them where the all-reduce reads them and no copy is made.
//
// --compress: fp16/bf16 put 16-bit values on the wire (f32 sums); topk:R sends each
// worker's top R of (gradient + residual) by all-gather, one parameter at a time, after
// backward (no overlap), and under --sync=bsp|ssp|asp pushes only the top R of each
// dense gradient to the servers (Push, Client::PushTopK).
//
// On a device (--device=cuda, worker/device_staging.h) `params` are the host mirrors the
// loop pushes, pulls and checkpoints, and `device_params` the model's own: the buckets
// are then made of the device gradients (device memory, all-reduced by the NCCL
// communicator; Bucketer::AdoptBucketMemory re-homes the model's gradients), and
// FinishStep copies each reduced gradient into its mirror before the same optimizer
// code runs on the host (so checkpoints and the digest are unchanged). With the CPU
// "device" (--staging_on_cpu) the same code runs over MPI.
//
// Thread safety: one thread (the training loop) calls everything; the communicator's
// thread works on bucket buffers and gradients while their all-reduce is in flight,
// between OnGradReady and the end of FinishStep.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "collective/bucketer.h"
#include "collective/compression.h"
#include "collective/sync_mode.h"
#include "worker/client.h"
#include "worker/handle.h"
#include "worker/model/model.h"

namespace tessera::worker {

struct GradSyncOptions {
  // --sync. Default: "bsp" (every parameter through the servers; GradSync does nothing).
  std::string sync = "bsp";
  // --bucket_mb: fusion buffer in MiB (0: one all-reduce per tensor). Default: 25.
  double bucket_mb = 25;
  // --compress. Default: none.
  collective::CompressionSpec compress;
  // The servers' --chunk_bytes: the local optimizer clips and updates per chunk of this
  // many bytes, exactly as a server does. Default: 1 MiB.
  uint64_t chunk_bytes = 1 << 20;
  // Bound on waiting for one step's all-reduces. Default: 300 s.
  Duration timeout = std::chrono::seconds(300);
};

// Checks the options on their own (bucket_mb >= 0 and finite, chunk_bytes >= 4, topk only
// with all-reduced parameters); errors name the flag.
Status ValidateGradSyncOptions(const GradSyncOptions& options);

class GradSync {
 public:
  // `params`: the model's, in parameters() order, values already initialised identically
  // on every worker. `comm`: the workers' communicator (not owned), or null when
  // num_workers == 1. `device_params`: empty, or one per params entry, the model's
  // parameters on a device (see above; not owned, they outlive this object; `comm` must
  // then reduce that device's memory). Errors: a sparse table under --sync=allreduce
  // (RouteParams), a communicator whose size is not num_workers, bad options,
  // device_params of the wrong length or with --compress=topk:R.
  static Result<std::unique_ptr<GradSync>> Create(const GradSyncOptions& options, collective::Communicator* comm,
                                                  int num_workers, std::vector<model::Parameter*> params,
                                                  std::vector<model::Parameter*> device_params = {});

  collective::GradSyncMode mode() const { return mode_; }
  // Indices (into params) of the parameters the trainer pushes and pulls itself.
  const std::vector<size_t>& server_params() const { return server_params_; }
  size_t num_buckets() const { return bucketer_ ? bucketer_->num_buckets() : 0; }
  // f32 gradient bytes handed to all-reduce so far (before any --compress; 0 with one
  // worker): every all-reduced parameter's gradient, once per step.
  uint64_t bytes_allreduced() const { return bytes_allreduced_; }

  // Pushes the gradient of server-routed parameter params[i] (an index from
  // server_params()) for `step`: its top entries under --compress=topk:R with
  // --sync=bsp|ssp|asp (error feedback kept here; sparse tables are never compressed),
  // else the whole tensor.
  Handle Push(Client* client, size_t i, uint32_t param_id, int64_t step);
  bool compresses_pushes() const { return !push_topk_.empty(); }

  // The model's gradient-ready hook: p's gradient is final for this step. p is a params
  // entry, or with device_params a device_params entry.
  void OnGradReady(model::Parameter* p);
  // With device_params: whether p (a device_params entry) is all-reduced here (else the
  // trainer pushes its mirror).
  bool reduces(const model::Parameter* p) const { return device_index_.count(p) > 0; }

  // The optimizer state of one all-reduced parameter, for checkpoints
  // (worker/replica_state.h): its values are param->value, chunked like a server's.
  struct LocalState {
    model::Parameter* param;
    int64_t chunk;                          // elements per chunk
    std::vector<std::vector<float>>* slots;  // per chunk: slot k at k * chunk length
    int64_t* updates;                        // optimizer updates applied so far
  };
  std::vector<LocalState> local_states();

  // Waits for this step's all-reduces (in slices; `should_stop` may end the wait with
  // kAborted when the job is stopping) and applies one optimizer update to every
  // all-reduced parameter.
  Status FinishStep(const std::function<bool()>& should_stop);

 private:
  struct Local {  // optimizer state of one all-reduced parameter
    model::Parameter* param = nullptr;
    model::Parameter* device = nullptr;  // with device_params: the model's parameter
    int64_t chunk = 0;                 // elements per chunk
    std::vector<std::vector<float>> slots;  // per chunk
    int64_t updates = 0;
    std::unique_ptr<collective::TopKCompressor> topk;
  };

  GradSync(const GradSyncOptions& options, collective::Communicator* comm) : options_(options), comm_(comm) {}
  Status ApplyLocal(Local& l);

  const GradSyncOptions options_;
  collective::Communicator* const comm_;
  collective::GradSyncMode mode_ = collective::GradSyncMode::kServers;
  std::vector<size_t> server_params_;
  std::vector<Local> locals_;
  // param (the device one with device_params) -> Bucketer tensor index
  std::unordered_map<model::Parameter*, size_t> bucket_index_;
  std::unordered_map<const model::Parameter*, size_t> device_index_;  // device param -> locals_ index
  std::unique_ptr<collective::Bucketer> bucketer_;
  std::vector<model::Parameter*> params_;
  std::unordered_map<size_t, std::unique_ptr<collective::TopKCompressor>> push_topk_;  // by params_ index
  std::vector<uint32_t> push_indices_;  // scratch of Push
  std::vector<float> push_values_;
  Status hook_error_;
  uint64_t bytes_allreduced_ = 0;
};

}  // namespace tessera::worker
