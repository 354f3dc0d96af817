#include "collective/communicator.h"

namespace tessera::collective {

std::string_view WireFormatName(WireFormat w) {
  switch (w) {
    case WireFormat::kNative: return "native";
    case WireFormat::kF16: return "fp16";
    case WireFormat::kBF16: return "bf16";
  }
  return "?";
}

CollHandle CollHandle::Pending() {
  CollHandle h;
  h.state_ = std::make_shared<State>();
  return h;
}

CollHandle CollHandle::Failed(Status st) {
  CollHandle h = Pending();
  h.Complete(std::move(st));
  return h;
}

Status CollHandle::Wait(Duration timeout) const {
  if (!state_) return Status::OK();
  std::unique_lock<std::mutex> lock(state_->mu);
  if (!state_->cv.wait_for(lock, timeout, [this] { return state_->done; })) {
    return Status::TimedOut("collective operation still running after " +
                            std::to_string(std::chrono::duration<double>(timeout).count()) + " s");
  }
  return state_->status;
}

bool CollHandle::Done() const {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->done;
}

void CollHandle::Complete(Status st) const {
  if (!state_) return;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->done) return;
    state_->done = true;
    state_->status = std::move(st);
  }
  state_->cv.notify_all();
}

Status ValidateAllReduce(const TensorView& t, WireFormat wire) {
  if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
    return Status::InvalidArgument("all-reduce: dtype " + std::string(DTypeName(t.dtype)) +
                                   " is not supported (f32, f16, bf16)");
  }
  if (t.numel() > 0 && t.data == nullptr) return Status::InvalidArgument("all-reduce: null data");
  if ((t.dtype == DType::kF16 && wire == WireFormat::kBF16) ||
      (t.dtype == DType::kBF16 && wire == WireFormat::kF16)) {
    return Status::InvalidArgument("all-reduce: a " + std::string(DTypeName(t.dtype)) +
                                   " tensor cannot travel as " + std::string(WireFormatName(wire)));
  }
  return Status::OK();
}

}  // namespace tessera::collective
