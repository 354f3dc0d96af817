// The dense trainer's device path (worker/trainer.h, "On a device"): the pieces of
// Setup and RunStep that go through DeviceStaging (worker/device_staging.h). Split from
// trainer.cc to keep each file about one thing; same class, same thread.
#include "worker/trainer.h"

#include <string>
#include <vector>

#include "common/timeline.h"

namespace tessera::worker {

void Trainer::AbandonSteps() {
  // Early pushes send the mirrors' pinned gradients: wait them out before those go away.
  WaitAll(&early_pushes_, "abandoning pushes").IgnoreError();
}

Result<std::vector<model::Parameter*>> Trainer::StartStaging() {
  TESSERA_ASSIGN_OR_RETURN(staging_, DeviceStaging::Create(place_.device, model_->parameters(),
                                                           [this](model::Parameter* m) { OnMirrorGradReady(m); }));
  std::vector<model::Parameter*> mirrors = staging_->mirrors();
  for (size_t i = 0; i < mirrors.size(); ++i) mirror_index_[mirrors[i]] = i;
  pushed_.assign(mirrors.size(), false);
  model_->set_grad_ready_hook([this](model::Parameter* p) {
    // All-reduced on the device: straight into its bucket. Else to the host, then pushed
    // (or, under topk compression, all-reduced from the mirror).
    if (grad_sync_->reduces(p)) {
      grad_sync_->OnGradReady(p);
      return;
    }
    Status st = staging_->OnModelGradReady(p);
    if (hook_error_.ok() && !st.ok()) hook_error_ = st;
  });
  return mirrors;
}

void Trainer::OnMirrorGradReady(model::Parameter* mirror) {
  const size_t i = mirror_index_.at(mirror);
  if (!server_routed_[i]) {
    grad_sync_->OnGradReady(mirror);
    return;
  }
  early_pushes_.push_back(grad_sync_->Push(place_.client, i, dense_ids_[i], step_));
  pushed_[i] = true;
}

Status Trainer::Prefetch() {
  prefetch_cursor_ = batches_->cursor();
  TESSERA_ASSIGN_OR_RETURN(data::Batch next, batches_->Next());
  TESSERA_RETURN_IF_ERROR(staging_->StartBatch(next.features, next.labels));
  prefetched_size_ = next.size;
  prefetched_ = true;
  return Status::OK();
}

Result<model::LossResult> Trainer::StagedCompute() {
  std::pair<TensorView, TensorView> on_device;
  TESSERA_ASSIGN_OR_RETURN(on_device, staging_->FinishBatch());
  model::LossResult loss;
  {
    timeline::Span span("forward", "compute");
    TESSERA_ASSIGN_OR_RETURN(loss, model_->Forward(on_device.first, on_device.second));
  }
  pushed_.assign(dense_.size(), false);
  {
    timeline::Span span("backward", "compute");
    TESSERA_RETURN_IF_ERROR(model_->Backward());
  }
  TESSERA_RETURN_IF_ERROR(staging_->FinishGrads());
  Status hook = hook_error_;
  hook_error_ = Status::OK();
  TESSERA_RETURN_IF_ERROR_CTX(hook, "staging gradients");
  // A model that does not report every gradient during backward: push the rest now.
  for (size_t i : server_dense_) {
    if (!pushed_[i]) early_pushes_.push_back(grad_sync_->Push(place_.client, i, dense_ids_[i], step_));
  }
  return loss;
}

Status Trainer::ValuesToDevice(const std::vector<size_t>& which) {
  for (size_t i : which) TESSERA_RETURN_IF_ERROR(staging_->ValueToDevice(i));
  return staging_->WaitValues();
}

Status Trainer::WaitPullsToDevice(std::vector<Handle>* handles, const std::vector<size_t>& which, const char* what) {
  Status first;
  for (size_t k = 0; k < handles->size(); ++k) {
    Status st = (*handles)[k].Wait(Timeout());
    if (st.ok() && first.ok()) st = staging_->ValueToDevice(which[k]);
    if (first.ok() && !st.ok()) first = st.WithContext(what);
  }
  handles->clear();
  Status copies = staging_->WaitValues();
  return first.ok() ? copies : first;
}

}  // namespace tessera::worker
