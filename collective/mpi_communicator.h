// MpiCommunicator: the Communicator for host tensors, over MPI, run by one dedicated
// communication thread.
//
// MPI lifecycle. The communication thread calls MPI_Init_thread, every MPI call, and
// MPI_Finalize, so it is MPI's "main thread" and MPI_THREAD_FUNNELED is all we ask for
// (Open MPI's MPI_THREAD_MULTIPLE adds a lock to every call on the vader/ob1 fast path,
// and nothing else in the process calls MPI). If MPI is already initialised by someone
// else, Start fails unless that thread level is MPI_THREAD_MULTIPLE.
//
// Which processes. MPI_COMM_WORLD is whatever the launcher started (docs/collective.md):
// under `mpirun -np 1+S+W tessera train`, every role; under `tessera launch
// --sync=allreduce`, only the workers (the launcher runs them as one mpirun). Every
// process of the world must call Start (members with member=true, the others with
// member=false): MPI_Comm_split(world, member ? 0 : MPI_UNDEFINED, world rank) derives
// the workers-only communicator, and MPI_Init / MPI_Finalize are matched in every process.
//
// Failures. Open MPI 4.1 has no fault tolerance without ULFM: a collective whose peer died
// never returns over shared memory (vader), and mpirun's default reaction to a process
// that dies is to kill every other rank. So the bound is ours: a watchdog fails the
// running operation with kTimedOut once it has run longer than op_timeout, fails every
// queued one, and breaks the communicator; the communication thread, stuck inside MPI, is
// then abandoned (no MPI_Finalize: it would wait for the dead peer too) and the process is
// expected to exit with an error. Within a Tessera job the coordinator's heartbeat
// timeout also stops the job; callers wait on handles in bounded slices.
//
// Thread safety: every public method may be called from any thread. The communication
// thread owns MPI and the scratch buffers; the queue and the broken status are guarded by
// a mutex.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "collective/communicator.h"

namespace tessera::collective {

struct MpiOptions {
  // In the workers-only communicator (else: only init/split/finalize). Default: true.
  bool member = true;
  // An operation running longer than this fails with kTimedOut and breaks the
  // communicator. Default: 120 s.
  Duration op_timeout = std::chrono::seconds(120);
  // How long Start waits for MPI_Init_thread and the split. Default: 120 s.
  Duration init_timeout = std::chrono::seconds(120);
};

class MpiCommunicator final : public Communicator {
 public:
  // Starts the communication thread, initialises MPI and derives the members'
  // communicator. kTimedOut when MPI_Init/split did not return within init_timeout;
  // kFailedPrecondition when MPI was initialised elsewhere with too low a thread level.
  static Result<std::unique_ptr<MpiCommunicator>> Start(const MpiOptions& options);
  // Drains the queue, frees the communicator and finalises MPI (skipped when broken).
  ~MpiCommunicator() override;

  int rank() const override;   // in the members' communicator; -1 for a non-member
  int size() const override;   // members; 0 for a non-member
  std::string_view backend() const override { return "mpi"; }
  int world_rank() const;
  int world_size() const;

  CollHandle AllReduce(TensorView t, ReduceOp op, WireFormat wire = WireFormat::kNative) override;
  CollHandle Broadcast(TensorView t, int root) override;
  CollHandle AllGather(TensorView in, TensorView out) override;
  CollHandle Barrier() override;

  // Runs fn on the communication thread with the members' MPI_Comm (passed as void*, an
  // MPI_Comm*), in issue order with the other operations: for benchmarks that compare
  // against raw MPI calls.
  CollHandle Run(std::function<Status(void* mpi_comm)> fn);

  // Every process of MPI_COMM_WORLD (members or not) contributes `mine` and gets every
  // rank's string, indexed by world rank: the launch rendezvous (launch/rendezvous.h)
  // publishes rank 0's endpoint this way. Blocks until done, up to op_timeout.
  Result<std::vector<std::string>> AllGatherWorldStrings(const std::string& mine);

  // Non-OK once the communicator is broken (an operation timed out or MPI failed).
  Status broken() const;

  struct Shared;  // state shared with the communication and watchdog threads

 private:
  explicit MpiCommunicator(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace tessera::collective
