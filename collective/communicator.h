// Communicator: Tessera's one collective interface (all-reduce, broadcast, all-gather,
// barrier), asynchronous with handles, over host tensors (MPI backend,
// collective/mpi_communicator.h) or CUDA tensors (NCCL backend,
// collective/nccl_communicator.h, built with TESSERA_CUDA).
//
// Dtypes: f32, f16, bf16. 16-bit tensors are reduced with f32 accumulation: each rank's
// values travel as 16-bit numbers, are summed in f32 and rounded once (docs/collective.md
// "Numerics"). WireFormat::kF16 / kBF16 do the same for f32 tensors (the --compress
// flag): half the bytes on the wire, f32 sums, the result rounded once.
//
// Every operation is in place on memory the caller owns: the caller keeps the tensor
// alive and does not touch it until the handle is done. Operations complete in the order
// they were issued, and every rank must issue the same operations in the same order
// (MPI/NCCL collective semantics).
//
// Errors: a handle's Wait is bounded; an operation that does not finish within the
// communicator's op timeout fails with kTimedOut and breaks the communicator (every later
// operation fails at once with the same status), because a collective that missed a
// peer cannot be resumed.
//
// Thread safety: every method may be called from any thread; operations are executed by
// the backend's own communication thread (MPI) or stream (NCCL).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "common/tensor.h"

namespace tessera::collective {

enum class ReduceOp : uint8_t {
  kSum = 0,
  kMean = 1,  // sum, then scaled by 1/size (the servers' --grad_reduce=mean rule)
};

// How an all-reduce moves f32 values between ranks.
enum class WireFormat : uint8_t {
  kNative = 0,  // the tensor's own dtype
  kF16 = 1,     // f32 tensors: IEEE half on the wire, f32 accumulation
  kBF16 = 2,    // f32 tensors: bfloat16 on the wire, f32 accumulation
};
std::string_view WireFormatName(WireFormat w);

// The completion of one operation. Copyable; all copies see the same outcome. A
// default-constructed handle is already done with OK.
class CollHandle {
 public:
  CollHandle() = default;
  static CollHandle Pending();
  static CollHandle Failed(Status st);

  // Waits at most `timeout` for completion. Returns the operation's status, or kTimedOut
  // when it is still running (the operation goes on; Wait may be called again).
  Status Wait(Duration timeout) const;
  bool Done() const;

  // Backends only: records the outcome and wakes the waiters. Later calls are ignored.
  void Complete(Status st) const;

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status status;
  };
  std::shared_ptr<State> state_;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string_view backend() const = 0;  // "mpi", "nccl"

  // In place: t = op over every rank's t. f32/f16/bf16; `wire` applies to f32 only
  // (InvalidArgument for a 16-bit tensor with a 16-bit wire format of the other kind).
  virtual CollHandle AllReduce(TensorView t, ReduceOp op, WireFormat wire = WireFormat::kNative) = 0;
  // t on every rank = t on `root`. Any dtype (bytes are copied).
  virtual CollHandle Broadcast(TensorView t, int root) = 0;
  // out = concatenation of every rank's `in`, rank order. out.nbytes == in.nbytes * size.
  virtual CollHandle AllGather(TensorView in, TensorView out) = 0;
  virtual CollHandle Barrier() = 0;
};

// Checks what every backend requires of an all-reduce argument; the message names the
// operation and the offending property.
Status ValidateAllReduce(const TensorView& t, WireFormat wire);

}  // namespace tessera::collective
