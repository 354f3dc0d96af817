#include "collective/bucketer.h"

#include <algorithm>

#include "kernels/ops.h"
#include "kernels/transfer.h"

namespace tessera::collective {

Status Bucketer::CopyF32(float* dst, const float* src, int64_t n) const {
  if (dst == src || n == 0) return Status::OK();
  return kernels::CopyTensor({const_cast<float*>(src), DType::kF32, {n}, device_}, {dst, DType::kF32, {n}, device_});
}

Result<std::unique_ptr<Bucketer>> Bucketer::Create(Communicator* comm, std::vector<TensorView> tensors,
                                                   const BucketOptions& options) {
  if (comm == nullptr) return Status::InvalidArgument("Bucketer needs a communicator");
  const Device device = tensors.empty() ? Device::kCPU : tensors[0].device;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& t = tensors[i];
    if (t.dtype != DType::kF32 || t.device != device || (t.numel() > 0 && t.data == nullptr)) {
      return Status::InvalidArgument("Bucketer: tensor " + std::to_string(i) + " is not an f32 tensor on the first one's device (" +
                                     std::string(DTypeName(t.dtype)) + ")");
    }
  }
  std::unique_ptr<Bucketer> b(new Bucketer(comm, std::move(tensors), options, device));
  b->slots_.resize(b->tensors_.size());
  size_t bytes = 0;
  for (size_t i = 0; i < b->tensors_.size(); ++i) {
    const size_t nb = b->tensors_[i].nbytes();
    const bool fits = options.bucket_bytes > 0 && !b->buckets_.empty() && bytes + nb <= options.bucket_bytes;
    if (!fits) {
      b->buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& bk = b->buckets_.back();
    b->slots_[i].bucket = b->buckets_.size() - 1;
    b->slots_[i].offset = bk.numel;
    bk.members.push_back(i);
    bk.numel += static_cast<size_t>(b->tensors_[i].numel());
    bytes += nb;
  }
  for (Bucket& bk : b->buckets_) {
    if (bk.members.size() > 1) {
      TESSERA_ASSIGN_OR_RETURN(bk.flat, kernels::AllocateTensor(device, DType::kF32, {static_cast<int64_t>(bk.numel)}));
    }
  }
  return b;
}

void Bucketer::Issue(Bucket& b) {
  TensorView v = b.members.size() > 1 ? b.flat.view() : tensors_[b.members[0]];
  b.handle = comm_->AllReduce(v, options_.reduce, options_.wire);
  b.issued = true;
  ++reductions_;
}

Result<Tensor> Bucketer::AdoptBucketMemory(size_t i) {
  if (i >= slots_.size()) return Status::InvalidArgument("Bucketer: tensor " + std::to_string(i) + " out of range");
  Bucket& b = buckets_[slots_[i].bucket];
  if (b.members.size() < 2) return Status::FailedPrecondition("Bucketer: tensor " + std::to_string(i) + " is alone in its bucket");
  if (b.ready > 0 || b.issued) return Status::FailedPrecondition("Bucketer: a step is in progress");
  TensorView& t = tensors_[i];
  float* window = b.flat.as<float>() + slots_[i].offset;
  TESSERA_RETURN_IF_ERROR(CopyF32(window, static_cast<const float*>(t.data), t.numel()));
  Buffer keep = b.flat.buffer();
  Buffer view = Buffer::Wrap(window, t.nbytes(), device_, [keep] {});
  t.data = window;
  return Tensor::FromBuffer(std::move(view), DType::kF32, t.shape);
}

Status Bucketer::MarkReady(size_t i) {
  if (i >= slots_.size()) {
    return Status::InvalidArgument("Bucketer: tensor " + std::to_string(i) + " of " + std::to_string(slots_.size()));
  }
  Slot& s = slots_[i];
  if (s.ready) return Status::FailedPrecondition("Bucketer: tensor " + std::to_string(i) + " marked ready twice in one step");
  s.ready = true;
  Bucket& b = buckets_[s.bucket];
  if (b.members.size() > 1) {
    const TensorView& t = tensors_[i];
    TESSERA_RETURN_IF_ERROR(CopyF32(b.flat.as<float>() + s.offset, static_cast<const float*>(t.data), t.numel()));
  }
  if (++b.ready == b.members.size()) Issue(b);
  return Status::OK();
}

Status Bucketer::Finish(Duration timeout, const std::function<bool()>& should_stop) {
  Status first;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].ready) {
      Status st = MarkReady(i);
      if (first.ok() && !st.ok()) first = st;
    }
  }
  const Deadline deadline(timeout);
  bool all_done = true;
  for (Bucket& b : buckets_) {
    if (!b.issued) continue;
    Status st;
    for (;;) {
      st = b.handle.Wait(std::min<Duration>(std::chrono::milliseconds(100),
                                            std::max<Duration>(Duration(0), deadline.at() - Clock::now())));
      if (st.code() != StatusCode::kTimedOut) break;
      // Done between the slice's timeout and this check: take its own outcome, not the
      // slice's TimedOut (which once failed a healthy job across nodes, multinode.mpirun_job).
      if (b.handle.Done()) {
        st = b.handle.Wait(Duration(0));
        break;
      }
      if (should_stop && should_stop()) {
        st = Status::Aborted("the job is stopping");
        break;
      }
      if (deadline.Expired()) {
        st = Status::TimedOut("gradient all-reduce did not finish within " +
                              std::to_string(std::chrono::duration<double>(timeout).count()) + " s");
        break;
      }
    }
    if (!b.handle.Done()) all_done = false;
    if (first.ok() && !st.ok()) first = st;
    if (st.ok() && b.members.size() > 1) {
      for (size_t m : b.members) {
        const TensorView& t = tensors_[m];
        Status c = CopyF32(static_cast<float*>(t.data), b.flat.as<float>() + slots_[m].offset, t.numel());
        if (first.ok() && !c.ok()) first = c;
      }
    }
  }
  if (all_done) {
    for (Slot& s : slots_) s.ready = false;
    for (Bucket& b : buckets_) {
      b.ready = 0;
      b.issued = false;
      b.handle = CollHandle();
    }
  }
  return first;
}

}  // namespace tessera::collective
