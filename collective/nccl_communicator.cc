#include "collective/nccl_communicator.h"

#include <cuda_runtime.h>
#include <glog/logging.h>
#include <nccl.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "common/timeline.h"
#include "kernels/ops.h"

namespace tessera::collective {

namespace {

Status CudaStatus(cudaError_t e, const std::string& call) {
  if (e == cudaSuccess) return Status::OK();
  return Status::Unavailable(call + ": " + cudaGetErrorString(e));
}

Status NcclStatus(ncclResult_t r, const std::string& call, ncclComm_t comm = nullptr) {
  if (r == ncclSuccess || r == ncclInProgress) return Status::OK();
  std::string msg = call + ": " + ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') msg += std::string(" (") + last + ")";
  return Status::Unavailable(msg);
}

double Secs(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

struct NcclCommunicator::State {
  NcclOptions options;
  int rank = 0, size = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  float* barrier_buf = nullptr;  // 1 float on the device

  struct Pending {
    cudaEvent_t event = nullptr;
    CollHandle handle;
    Clock::time_point start;
    int64_t enqueued_us = 0;  // timeline clock
    std::string what;
    std::function<Status()> after;  // on the poller thread once the event fired
  };

  std::mutex mu;  // serialises NCCL calls; guards everything below
  std::condition_variable cv;
  std::deque<Pending> pending;
  Status broken;
  bool stopping = false;
  std::thread poller;
  int64_t last_done_us = 0;  // poller thread only: when the previous operation completed

  // With a non-blocking communicator a call may return ncclInProgress: wait (bounded)
  // until the communicator is ready again before the next call.
  Status WaitReady(const std::string& what, Duration budget) {
    const Deadline deadline(budget);
    for (;;) {
      ncclResult_t async = ncclSuccess;
      TESSERA_RETURN_IF_ERROR(NcclStatus(ncclCommGetAsyncError(comm, &async), "ncclCommGetAsyncError", comm));
      if (async == ncclSuccess) return Status::OK();
      if (async != ncclInProgress) return NcclStatus(async, what, comm);
      if (deadline.Expired()) {
        return Status::TimedOut(what + " still in progress after " + std::to_string(Secs(budget)) + " s");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // REQUIRES mu held. Aborts the communicator and fails everything pending.
  void BreakLocked(Status st) {
    if (broken.ok()) broken = st;
    LOG(ERROR) << "NCCL communicator (rank " << rank << " of " << size << ") aborted: " << broken.ToString();
    if (comm != nullptr) {
      ncclCommAbort(comm);  // makes this rank's pending NCCL kernels return
      comm = nullptr;
    }
    for (Pending& p : pending) {
      p.handle.Complete(broken);
      cudaEventDestroy(p.event);
    }
    pending.clear();
    cv.notify_all();
  }

  CollHandle Enqueue(std::string what, const std::function<Status()>& launch, std::function<Status()> after) {
    std::lock_guard<std::mutex> lock(mu);
    if (!broken.ok()) return CollHandle::Failed(broken);
    if (stopping) return CollHandle::Failed(Status::Aborted(what + ": the communicator is shutting down"));
    cudaSetDevice(options.device);
    Status st = launch();
    if (st.ok()) st = WaitReady(what, options.op_timeout);
    Pending p;
    if (st.ok()) st = CudaStatus(cudaEventCreateWithFlags(&p.event, cudaEventDisableTiming), "cudaEventCreate");
    if (st.ok()) st = CudaStatus(cudaEventRecord(p.event, stream), "cudaEventRecord");
    if (!st.ok()) {
      st = st.WithContext(what + " on the NCCL communicator (rank " + std::to_string(rank) + " of " + std::to_string(size) + ")");
      BreakLocked(st);
      return CollHandle::Failed(st);
    }
    p.handle = CollHandle::Pending();
    p.start = Clock::now();
    p.enqueued_us = timeline::NowMicros();
    p.what = std::move(what);
    p.after = std::move(after);
    CollHandle h = p.handle;
    pending.push_back(std::move(p));
    cv.notify_all();
    return h;
  }

  void PollerMain() {
    cudaSetDevice(options.device);
    timeline::SetThreadName("nccl poller");
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      if (pending.empty()) {
        if (stopping) return;
        cv.wait_for(lock, std::chrono::milliseconds(50));
        continue;
      }
      Pending& front = pending.front();
      const cudaError_t q = cudaEventQuery(front.event);
      if (q == cudaSuccess) {
        Pending done = std::move(front);
        pending.pop_front();
        lock.unlock();
        Status st = done.after ? done.after() : Status::OK();
        // --timeline: each operation from when it reached the head of the stream's queue
        // (its enqueue, or the previous one's completion) to when its event was seen, so
        // the spans of this thread never overlap.
        const int64_t now_us = timeline::NowMicros();
        const int64_t from_us = std::max(done.enqueued_us, last_done_us);
        timeline::Record("nccl", "collective", from_us, now_us - from_us, "rank", rank);
        last_done_us = now_us;
        cudaEventDestroy(done.event);
        done.handle.Complete(st);
        lock.lock();
        cv.notify_all();
        continue;
      }
      if (q != cudaErrorNotReady) {
        BreakLocked(CudaStatus(q, front.what + ": cudaEventQuery"));
        continue;
      }
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        BreakLocked(NcclStatus(async, front.what + " on the NCCL communicator (rank " + std::to_string(rank) + " of " +
                                          std::to_string(size) + "): a peer failed",
                               comm));
        continue;
      }
      if (Clock::now() - front.start > options.op_timeout) {
        BreakLocked(Status::TimedOut(front.what + " on the NCCL communicator (rank " + std::to_string(rank) + " of " +
                                     std::to_string(size) + ") did not finish within " +
                                     std::to_string(Secs(options.op_timeout)) +
                                     " s: a peer rank is probably dead or stuck; aborted"));
        continue;
      }
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      lock.lock();
    }
  }
};

Result<NcclUniqueIdBytes> NcclCommunicator::NewUniqueId() {
  ncclUniqueId id;
  TESSERA_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  NcclUniqueIdBytes out;
  static_assert(sizeof(id) == sizeof(out));
  std::memcpy(out.data(), &id, sizeof(id));
  return out;
}

Result<NcclUniqueIdBytes> NcclCommunicator::BootstrapUniqueId(Communicator* host, Duration timeout) {
  NcclUniqueIdBytes id{};
  if (host->rank() == 0) {
    TESSERA_ASSIGN_OR_RETURN(id, NewUniqueId());
  }
  TensorView v{id.data(), DType::kF32, {static_cast<int64_t>(id.size() / 4)}, Device::kCPU};
  TESSERA_RETURN_IF_ERROR_CTX(host->Broadcast(v, 0).Wait(timeout), "handing out the NCCL unique id");
  return id;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(const NcclOptions& options,
                                                                   const NcclUniqueIdBytes& id, int rank, int size) {
  if (size < 1 || rank < 0 || rank >= size) {
    return Status::InvalidArgument("NCCL: rank " + std::to_string(rank) + " outside [0, " + std::to_string(size) + ")");
  }
  if (!kernels::CudaDeviceAvailable()) return Status::Unavailable("NCCL: no usable CUDA device");
  auto s = std::make_unique<State>();
  s->options = options;
  s->rank = rank;
  s->size = size;
  TESSERA_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(options.device), "cudaSetDevice(" + std::to_string(options.device) + ")"));
  TESSERA_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  TESSERA_RETURN_IF_ERROR(CudaStatus(cudaMalloc(reinterpret_cast<void**>(&s->barrier_buf), sizeof(float)), "cudaMalloc"));
  ncclUniqueId uid;
  std::memcpy(&uid, id.data(), sizeof(uid));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // init and calls return at once; we poll with a deadline
  TESSERA_RETURN_IF_ERROR(NcclStatus(ncclCommInitRankConfig(&s->comm, size, uid, rank, &config), "ncclCommInitRankConfig"));
  Status st = s->WaitReady("ncclCommInitRankConfig (did every rank start?)", options.init_timeout);
  if (!st.ok()) {
    ncclCommAbort(s->comm);
    s->comm = nullptr;
    return st;
  }
  State* raw = s.get();
  s->poller = std::thread([raw] { raw->PollerMain(); });
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(s), rank, size));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<State> state, int rank, int size)
    : state_(std::move(state)), rank_(rank), size_(size) {}

NcclCommunicator::~NcclCommunicator() {
  State& s = *state_;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.stopping = true;
    s.cv.notify_all();
    s.cv.wait(lock, [&] { return s.pending.empty(); });  // the poller's op timeout bounds this
  }
  s.poller.join();
  cudaSetDevice(s.options.device);
  if (s.comm != nullptr) {
    if (s.broken.ok() && ncclCommFinalize(s.comm) != ncclSystemError && s.WaitReady("ncclCommFinalize", s.options.op_timeout).ok()) {
      ncclCommDestroy(s.comm);
    } else {
      ncclCommAbort(s.comm);
    }
  }
  if (s.barrier_buf != nullptr) cudaFree(s.barrier_buf);
  if (s.stream != nullptr) cudaStreamDestroy(s.stream);
}

Status NcclCommunicator::broken() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->broken;
}

CollHandle NcclCommunicator::AllReduce(TensorView t, ReduceOp op, WireFormat wire) {
  Status v = ValidateAllReduce(t, wire);
  if (v.ok() && t.device != Device::kCUDA) v = Status::InvalidArgument("NCCL all-reduce: the tensor is not on a CUDA device");
  if (!v.ok()) return CollHandle::Failed(v);
  State* s = state_.get();
  const ncclRedOp_t nop = op == ReduceOp::kMean ? ncclAvg : ncclSum;
  const size_t n = static_cast<size_t>(t.numel());
  const std::string what = "all-reduce of " + std::to_string(t.nbytes()) + " bytes";
  if (n == 0) return CollHandle();
  if (t.dtype == DType::kF32 && wire == WireFormat::kNative) {
    return s->Enqueue(what, [&] { return NcclStatus(ncclAllReduce(t.data, t.data, n, ncclFloat, nop, s->comm, s->stream), "ncclAllReduce", s->comm); }, {});
  }
  // Staged through a device scratch: f32 sums for 16-bit tensors, 16-bit wire for f32 ones.
  const bool widen = t.dtype != DType::kF32;
  const DType staged = widen ? DType::kF32 : (wire == WireFormat::kF16 ? DType::kF16 : DType::kBF16);
  void* scratch = nullptr;
  Status st = CudaStatus(cudaMalloc(&scratch, n * DTypeSize(staged)), "cudaMalloc");
  const TensorView sv{scratch, staged, {static_cast<int64_t>(n)}, Device::kCUDA};
  if (st.ok()) st = kernels::Cast(t, sv);  // synchronous: done before NCCL reads it
  if (!st.ok()) {
    if (scratch != nullptr) cudaFree(scratch);
    return CollHandle::Failed(st.WithContext(what));
  }
  const ncclDataType_t type = staged == DType::kF32 ? ncclFloat : staged == DType::kF16 ? ncclHalf : ncclBfloat16;
  return s->Enqueue(
      what, [&] { return NcclStatus(ncclAllReduce(scratch, scratch, n, type, nop, s->comm, s->stream), "ncclAllReduce", s->comm); },
      [t, sv, scratch] {
        Status c = kernels::Cast(sv, t);
        cudaFree(scratch);
        return c;
      });
}

CollHandle NcclCommunicator::Broadcast(TensorView t, int root) {
  if (root < 0 || root >= size_) return CollHandle::Failed(Status::InvalidArgument("broadcast: root " + std::to_string(root) + " out of range"));
  if (t.device != Device::kCUDA) return CollHandle::Failed(Status::InvalidArgument("NCCL broadcast: the tensor is not on a CUDA device"));
  State* s = state_.get();
  return s->Enqueue("broadcast of " + std::to_string(t.nbytes()) + " bytes", [&] {
    return NcclStatus(ncclBroadcast(t.data, t.data, t.nbytes(), ncclUint8, root, s->comm, s->stream), "ncclBroadcast", s->comm);
  }, {});
}

CollHandle NcclCommunicator::AllGather(TensorView in, TensorView out) {
  if (out.nbytes() != in.nbytes() * static_cast<size_t>(size_)) {
    return CollHandle::Failed(Status::InvalidArgument("all-gather: output has " + std::to_string(out.nbytes()) + " bytes, need " +
                                                      std::to_string(in.nbytes()) + " x " + std::to_string(size_)));
  }
  if (in.device != Device::kCUDA || out.device != Device::kCUDA) {
    return CollHandle::Failed(Status::InvalidArgument("NCCL all-gather: tensors must be on a CUDA device"));
  }
  State* s = state_.get();
  return s->Enqueue("all-gather of " + std::to_string(in.nbytes()) + " bytes", [&] {
    return NcclStatus(ncclAllGather(in.data, out.data, in.nbytes(), ncclUint8, s->comm, s->stream), "ncclAllGather", s->comm);
  }, {});
}

CollHandle NcclCommunicator::Barrier() {
  State* s = state_.get();
  return s->Enqueue("barrier", [&] {
    return NcclStatus(ncclAllReduce(s->barrier_buf, s->barrier_buf, 1, ncclFloat, ncclSum, s->comm, s->stream), "ncclAllReduce", s->comm);
  }, {});
}

}  // namespace tessera::collective
