#include "worker/device_staging.h"

#include <cstring>
#include <string>

#include "common/timeline.h"

namespace tessera::worker {
namespace {

Result<Tensor> PinnedTensor(Device device, DType dtype, const Shape& shape) {
  TESSERA_ASSIGN_OR_RETURN(Buffer b, kernels::AllocatePinned(device, static_cast<size_t>(NumElements(shape)) * DTypeSize(dtype)));
  return Tensor::FromBuffer(std::move(b), dtype, shape);
}

// A view of the first numel elements of `t`, shaped `shape`, grown (on `device`, or
// pinned host memory when `pinned`) when too small.
Result<TensorView> Fit(Tensor* t, Device device, bool pinned, DType dtype, const Shape& shape) {
  if (t->numel() < NumElements(shape) || t->dtype() != dtype) {
    if (pinned) {
      TESSERA_ASSIGN_OR_RETURN(*t, PinnedTensor(device, dtype, shape));
    } else {
      TESSERA_ASSIGN_OR_RETURN(*t, kernels::AllocateTensor(device, dtype, shape));
    }
  }
  return TensorView{t->data(), dtype, shape, pinned ? Device::kCPU : device};
}

}  // namespace

Result<std::unique_ptr<DeviceStaging>> DeviceStaging::Create(Device device, std::vector<model::Parameter*> model_params,
                                                             std::function<void(model::Parameter*)> ready) {
  std::unique_ptr<DeviceStaging> s(new DeviceStaging());
  TESSERA_ASSIGN_OR_RETURN(s->queue_, kernels::CopyQueue::Create(device));
  s->ready_ = std::move(ready);
  for (model::Parameter* p : model_params) {
    if (p->value.view().device != device) {
      return Status::InvalidArgument("DeviceStaging: parameter '" + p->spec.name + "' is not on the staging device");
    }
    auto slot = std::make_unique<Slot>();
    slot->model = p;
    slot->mirror.spec = p->spec;
    TESSERA_ASSIGN_OR_RETURN(slot->mirror.value, PinnedTensor(device, p->value.dtype(), p->value.shape()));
    TESSERA_ASSIGN_OR_RETURN(slot->mirror.grad, PinnedTensor(device, p->grad.dtype(), p->grad.shape()));
    s->index_[p] = s->slots_.size();
    s->slots_.push_back(std::move(slot));
  }
  return s;
}

DeviceStaging::~DeviceStaging() {
  // Dropped: a destructor has no caller to report to, and a failed copy already failed
  // the step that waited for it.
  if (queue_) queue_->WaitAll().IgnoreError();
}

std::vector<model::Parameter*> DeviceStaging::mirrors() {
  std::vector<model::Parameter*> out;
  for (auto& s : slots_) out.push_back(&s->mirror);
  return out;
}

Status DeviceStaging::StartBatch(TensorView features, TensorView labels) {
  timeline::Span span("h2d batch", "copy", "bytes", static_cast<int64_t>(features.nbytes() + labels.nbytes()));
  if (batch_pending_) return Status::FailedPrecondition("DeviceStaging::StartBatch: a started batch is pending");
  if (features.device != Device::kCPU || labels.device != Device::kCPU) {
    return Status::InvalidArgument("DeviceStaging::StartBatch: the batch must be in host memory");
  }
  TESSERA_ASSIGN_OR_RETURN(const TensorView hf, Fit(&pinned_features_, device(), true, features.dtype, features.shape));
  TESSERA_ASSIGN_OR_RETURN(const TensorView hl, Fit(&pinned_labels_, device(), true, labels.dtype, labels.shape));
  if (features.nbytes() > 0) std::memcpy(hf.data, features.data, features.nbytes());
  if (labels.nbytes() > 0) std::memcpy(hl.data, labels.data, labels.nbytes());
  TESSERA_ASSIGN_OR_RETURN(batch_features_, Fit(&device_features_, device(), false, features.dtype, features.shape));
  TESSERA_ASSIGN_OR_RETURN(batch_labels_, Fit(&device_labels_, device(), false, labels.dtype, labels.shape));
  TESSERA_RETURN_IF_ERROR_CTX(queue_->Copy(hf, batch_features_).status(), "copying the batch to the device");
  TESSERA_ASSIGN_OR_RETURN(batch_fence_, queue_->Copy(hl, batch_labels_));
  batch_pending_ = true;
  return Status::OK();
}

Result<std::pair<TensorView, TensorView>> DeviceStaging::FinishBatch() {
  if (!batch_pending_) return Status::FailedPrecondition("DeviceStaging::FinishBatch: no batch was started");
  timeline::Span span("h2d batch wait", "copy");
  batch_pending_ = false;
  TESSERA_RETURN_IF_ERROR_CTX(queue_->Wait(batch_fence_), "copying the batch to the device");
  return std::make_pair(batch_features_, batch_labels_);
}

Result<std::pair<TensorView, TensorView>> DeviceStaging::StageBatch(TensorView features, TensorView labels) {
  TESSERA_RETURN_IF_ERROR(StartBatch(std::move(features), std::move(labels)));
  return FinishBatch();
}

Status DeviceStaging::HandOver(bool block) {
  if (pending_grads_.empty()) return Status::OK();
  if (block) {
    timeline::Span span("d2h grad wait", "copy");
    TESSERA_RETURN_IF_ERROR_CTX(queue_->WaitAll(), "copying gradients to the host");
  }
  while (!pending_grads_.empty()) {
    const auto [slot, fence] = pending_grads_.front();
    TESSERA_ASSIGN_OR_RETURN(const bool done, queue_->Poll(fence));
    if (!done) break;
    // Popped first: `ready_` may push, and a failure there must not hand a mirror twice.
    pending_grads_.pop_front();
    if (ready_) ready_(&slots_[slot]->mirror);
  }
  return Status::OK();
}

Status DeviceStaging::OnModelGradReady(model::Parameter* p) {
  auto it = index_.find(p);
  if (it == index_.end()) return Status::InvalidArgument("DeviceStaging: gradient of an unknown parameter");
  Slot& s = *slots_[it->second];
  TESSERA_ASSIGN_OR_RETURN(const kernels::CopyQueue::Fence f, queue_->Copy(s.model->grad.view(), s.mirror.grad.view()));
  pending_grads_.emplace_back(it->second, f);
  return HandOver(false);
}

Status DeviceStaging::FinishGrads() { return HandOver(true); }

Status DeviceStaging::ValueToDevice(size_t i) {
  if (i >= slots_.size()) return Status::InvalidArgument("DeviceStaging: no parameter " + std::to_string(i));
  timeline::Span span("h2d params", "copy", "bytes", static_cast<int64_t>(slots_[i]->mirror.value.nbytes()));
  Slot& s = *slots_[i];
  TESSERA_RETURN_IF_ERROR_CTX(queue_->Copy(s.mirror.value.view(), s.model->value.view()).status(),
                              "copying '" + s.mirror.spec.name + "' to the device");
  values_pending_ = true;
  return Status::OK();
}

Status DeviceStaging::WaitValues() {
  if (!values_pending_) return Status::OK();
  timeline::Span span("h2d params wait", "copy");
  values_pending_ = false;
  return queue_->WaitAll().WithContext("copying parameters to the device");
}

}  // namespace tessera::worker
