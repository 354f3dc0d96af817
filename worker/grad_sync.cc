#include "worker/grad_sync.h"

#include <cmath>

#include "common/timeline.h"
#include "common/metrics_registry.h"
#include "kernels/ops.h"
#include "kernels/optimizer_step.h"

namespace tessera::worker {

using collective::CompressionSpec;
using collective::GradSyncMode;
using collective::Route;

Status ValidateGradSyncOptions(const GradSyncOptions& o) {
  if (!(o.bucket_mb >= 0) || !std::isfinite(o.bucket_mb) || o.bucket_mb > 1 << 20) {
    return Status::InvalidArgument("--bucket_mb=" + std::to_string(o.bucket_mb) + ": must be a number in [0, 1048576]");
  }
  if (o.chunk_bytes < 4) return Status::InvalidArgument("--chunk_bytes=" + std::to_string(o.chunk_bytes) + ": must be >= 4");
  const GradSyncMode mode = collective::GradSyncModeOf(o.sync);
  const bool half = o.compress.kind == CompressionSpec::Kind::kF16 || o.compress.kind == CompressionSpec::Kind::kBF16;
  if (half && mode == GradSyncMode::kServers) {
    return Status::InvalidArgument("--compress=" + o.compress.ToString() + " needs --sync=allreduce or --sync=hybrid (got --sync=" +
                                   o.sync + "): the parameter-server wire carries f32 gradients (topk:R works with both)");
  }
  return Status::OK();
}

Result<std::unique_ptr<GradSync>> GradSync::Create(const GradSyncOptions& options, collective::Communicator* comm,
                                                   int num_workers, std::vector<model::Parameter*> params,
                                                   std::vector<model::Parameter*> device_params) {
  TESSERA_RETURN_IF_ERROR(ValidateGradSyncOptions(options));
  const bool on_device = !device_params.empty();
  if (on_device && device_params.size() != params.size()) {
    return Status::InvalidArgument("GradSync: " + std::to_string(device_params.size()) + " device parameters for " +
                                   std::to_string(params.size()) + " parameters");
  }
  if (on_device && options.compress.kind == CompressionSpec::Kind::kTopK) {
    return Status::InvalidArgument("GradSync: --compress=topk:R all-reduces host gradients; it cannot run on device ones");
  }
  std::unique_ptr<GradSync> g(new GradSync(options, comm));
  g->mode_ = collective::GradSyncModeOf(options.sync);
  g->params_ = params;
  std::vector<ParamSpec> specs;
  for (const model::Parameter* p : params) specs.push_back(p->spec);
  TESSERA_ASSIGN_OR_RETURN(std::vector<Route> routes, collective::RouteParams(specs, g->mode_));
  if (num_workers > 1 && g->mode_ != GradSyncMode::kServers) {
    if (comm == nullptr) return Status::FailedPrecondition("--sync=" + options.sync + " with several workers needs a communicator");
    if (comm->size() != num_workers) {
      return Status::FailedPrecondition("the workers' communicator has " + std::to_string(comm->size()) +
                                        " ranks but the job has " + std::to_string(num_workers) + " workers");
    }
  }
  std::vector<TensorView> grads;  // backward order: the last parameter's gradient is ready first
  for (size_t i = params.size(); i-- > 0;) {
    if (routes[i] == Route::kServers) continue;
    model::Parameter* p = params[i];
    if (p->spec.dtype != DType::kF32) {
      return Status::InvalidArgument("parameter '" + p->spec.name + "' is " + std::string(DTypeName(p->spec.dtype)) +
                                     "; all-reduced parameters must be f32");
    }
    Local l;
    l.param = p;
    if (on_device) {
      l.device = device_params[i];
      g->device_index_[l.device] = g->locals_.size();
    }
    const int64_t n = p->value.numel();
    l.chunk = std::max<int64_t>(1, static_cast<int64_t>(options.chunk_bytes / 4));
    const int nslots = NumOptimizerSlots(p->spec.optimizer.kind);
    for (int64_t off = 0; off < n; off += l.chunk) {
      const int64_t len = std::min(l.chunk, n - off);
      std::vector<float> s(static_cast<size_t>(nslots * len));
      TESSERA_RETURN_IF_ERROR(kernels::InitSlots(p->spec.optimizer, s, static_cast<uint64_t>(len)));
      l.slots.push_back(std::move(s));
    }
    if (options.compress.kind == CompressionSpec::Kind::kTopK) {
      l.topk = std::make_unique<collective::TopKCompressor>(static_cast<size_t>(n), options.compress.topk_ratio);
    }
    g->bucket_index_[on_device ? l.device : p] = grads.size();
    grads.push_back(on_device ? l.device->grad.view() : p->grad.view());
    g->locals_.push_back(std::move(l));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (routes[i] != Route::kServers) continue;
    g->server_params_.push_back(i);
    // topk:R on the parameter-server path: dense pushes send their top entries.
    if (g->mode_ == GradSyncMode::kServers && options.compress.kind == CompressionSpec::Kind::kTopK &&
        params[i]->spec.kind == ParamKind::kDense) {
      g->push_topk_[i] = std::make_unique<collective::TopKCompressor>(static_cast<size_t>(params[i]->value.numel()),
                                                                       options.compress.topk_ratio);
    }
  }
  const bool communicate = comm != nullptr && num_workers > 1;
  if (communicate && !grads.empty() && options.compress.kind != CompressionSpec::Kind::kTopK) {
    collective::BucketOptions bo;
    bo.bucket_bytes = static_cast<size_t>(options.bucket_mb * (1 << 20));
    bo.reduce = collective::ReduceOp::kMean;
    bo.wire = options.compress.wire();
    TESSERA_ASSIGN_OR_RETURN(g->bucketer_, collective::Bucketer::Create(comm, grads, bo));
    // Backward writes fused gradients straight into their buckets: no copy in or out.
    for (auto& [param, index] : g->bucket_index_) {
      if (!g->bucketer_->fused(index)) continue;
      TESSERA_ASSIGN_OR_RETURN(param->grad, g->bucketer_->AdoptBucketMemory(index));
    }
  }
  return g;
}

void GradSync::OnGradReady(model::Parameter* p) {
  if (!bucketer_) return;
  auto it = bucket_index_.find(p);
  if (it == bucket_index_.end()) return;  // a server-routed parameter
  Status st = bucketer_->MarkReady(it->second);
  if (hook_error_.ok() && !st.ok()) hook_error_ = st;
}

Handle GradSync::Push(Client* client, size_t i, uint32_t param_id, int64_t step) {
  model::Parameter* p = params_[i];
  auto it = push_topk_.find(i);
  if (it == push_topk_.end()) return client->Push(param_id, p->grad.view(), step);
  it->second->Compress({p->grad.as<float>(), static_cast<size_t>(p->grad.numel())}, &push_indices_, &push_values_);
  return client->PushTopK(param_id, push_indices_, push_values_, step);
}

std::vector<GradSync::LocalState> GradSync::local_states() {
  std::vector<LocalState> out;
  for (Local& l : locals_) out.push_back({l.param, l.chunk, &l.slots, &l.updates});
  return out;
}

Status GradSync::ApplyLocal(Local& l) {
  model::Parameter* p = l.param;
  const int64_t n = p->value.numel();
  const int nslots = NumOptimizerSlots(p->spec.optimizer.kind);
  float* value = p->value.as<float>();
  float* grad = p->grad.as<float>();
  ++l.updates;
  size_t c = 0;
  for (int64_t off = 0; off < n; off += l.chunk, ++c) {
    const size_t len = static_cast<size_t>(std::min(l.chunk, n - off));
    TESSERA_RETURN_IF_ERROR(kernels::ApplyUpdate(p->spec.optimizer, l.updates, {value + off, len},
                                                     {l.slots[c].data(), static_cast<size_t>(nslots) * len},
                                                     {grad + off, len}));
  }
  return Status::OK();
}

Status GradSync::FinishStep(const std::function<bool()>& should_stop) {
  Status st = hook_error_;
  hook_error_ = Status::OK();
  // The buckets run on the communicator's thread ("allreduce" spans there); this is the
  // training thread waiting for the last of them.
  // No span in bsp/ssp/asp, where nothing is all-reduced.
  timeline::Span wait(locals_.empty() ? nullptr : "allreduce wait", "comm");
  if (bucketer_) {
    Status b = bucketer_->Finish(options_.timeout, should_stop);
    if (st.ok()) st = b;
  } else if (comm_ != nullptr && comm_->size() > 1) {  // top-k: one sparse all-reduce per parameter
    for (Local& l : locals_) {
      if (!st.ok()) break;
      st = collective::TopKAllReduce(comm_, l.topk.get(), l.param->grad.view(), collective::ReduceOp::kMean,
                                     options_.timeout);
    }
  }
  wait.End();
  TESSERA_RETURN_IF_ERROR_CTX(st, "all-reducing gradients");
  if (!device_index_.empty()) {
    // The reduced gradients, from the model's device memory into the host mirrors the
    // optimizer below updates.
    timeline::Span copy("d2h reduced grads", "copy");
    for (Local& l : locals_) {
      TESSERA_RETURN_IF_ERROR_CTX(kernels::CopyTensor(l.device->grad.view(), l.param->grad.view()),
                                  "copying the reduced gradient of '" + l.param->spec.name + "' to the host");
    }
  }
  if (comm_ != nullptr && comm_->size() > 1) {
    static metrics::Counter& reduced = metrics::Global().GetCounter("bytes_allreduced_total");
    for (const Local& l : locals_) {
      bytes_allreduced_ += l.param->grad.nbytes();
      reduced.Add(static_cast<uint64_t>(l.param->grad.nbytes()));
    }
  }
  timeline::Span span(locals_.empty() ? nullptr : "optimizer", "optimizer");
  for (Local& l : locals_) TESSERA_RETURN_IF_ERROR_CTX(ApplyLocal(l), "applying the optimizer to '" + l.param->spec.name + "'");
  return Status::OK();
}

}  // namespace tessera::worker
