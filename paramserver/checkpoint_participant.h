// The server's side of checkpoints (docs/checkpoints.md):
//  - CheckpointPrepare{s}: at the boundary of step s (every unit has applied step s-1,
//    none step s) the reactor thread copies its shards (ShardStore::Snapshot; the only
//    stall training sees) and queues the copy for the writer thread, which writes
//    <dir>/server-<index> (checkpoint/shard_db.h) and posts CheckpointDone back to the
//    loop. A prepare that arrives after the boundary is answered not ok ("too late");
//    the coordinator picks a later step.
//  - Incremental checkpoints write every dense chunk and only the sparse rows updated
//    since the last committed checkpoint (ShardStore's dirty-row tracking).
//  - RestoreShards: at start-up of a resumed job, fills a fresh core's store from a
//    checkpoint written by any number of servers (dense by element range, sparse rows by
//    the current owner of each key).
//
// Threading: every method except the writer's internals runs on the server's reactor
// thread; the writer thread owns only the snapshots handed to it. The destructor cancels
// a write in progress and joins the writer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/shard_db.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "paramserver/server_core.h"

namespace tessera::paramserver {

// What the loop sends back to the coordinator when a checkpoint part is done.
struct CheckpointReport {
  int64_t step = -1;
  bool ok = false;
  std::string message;
  uint64_t digest = 0;
  uint64_t store_digest = 0;
  uint64_t records = 0;
  uint64_t bytes = 0;
  double snapshot_s = 0;  // reactor stall
  double write_s = 0;     // background
};

class CheckpointParticipant {
 public:
  using PostFn = std::function<void(std::function<void()>)>;  // runs a task on the loop
  using ReportFn = std::function<void(const CheckpointReport&)>;

  // `dense_on_workers` (--sync=allreduce|hybrid): the workers hold the dense parameters
  // (worker 0 checkpoints them itself, checkpoint::kReplicaPart), so this server's dense
  // chunks are stale copies: they neither decide the step boundary nor get written.
  CheckpointParticipant(uint32_t server, checkpoint::WriteMethod method, PostFn post, ReportFn report,
                        bool dense_on_workers = false);
  ~CheckpointParticipant();
  CheckpointParticipant(const CheckpointParticipant&) = delete;
  CheckpointParticipant& operator=(const CheckpointParticipant&) = delete;

  // Loop thread.
  void OnPrepare(int64_t step, const std::string& directory, bool full, ParamServerCore& core);
  void OnCommit(int64_t step, bool committed, ParamServerCore& core);
  // After every push: takes the snapshot when the prepared boundary is reached.
  void AfterPush(ParamServerCore& core);

 private:
  struct Job {
    int64_t step = 0;
    bool full = true;
    std::string dir;
    ShardSnapshot snap;
    std::vector<std::string> names;  // param names by id
    uint64_t store_digest = 0;
    double snapshot_s = 0;
  };
  struct Pending {
    int64_t step = 0;
    std::string directory;
    bool full = true;
  };

  void Snapshot(ParamServerCore& core);
  void WriterLoop();

  const uint32_t server_;
  const checkpoint::WriteMethod method_;
  const bool dense_on_workers_;
  PostFn post_;
  ReportFn report_;

  // Loop thread only.
  std::optional<Pending> pending_;
  // Rows taken out of the dirty set by an incremental snapshot not yet committed: put
  // back when the attempt is abandoned.
  int64_t uncommitted_step_ = -1;
  std::vector<std::pair<uint32_t, Key>> uncommitted_rows_;
  // The previous snapshot's memory, handed back by the writer: reused by the next one
  // of the same kind (full / incremental).
  ShardSnapshot spare_;
  ShardSnapshot spare_incremental_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_ GUARDED_BY(mu_);
  bool stop_ GUARDED_BY(mu_) = false;
  std::atomic<bool> cancel_{false};
  std::thread writer_;
};

// Loads the checkpoint at `step_dir` (and its parent chain) into `core`'s store: every
// dense chunk this server owns must be covered, and every sparse row whose key this
// server owns under the current map is restored. Corruption / NotFound naming the file.
Status RestoreShards(const std::string& step_dir, ParamServerCore& core);

}  // namespace tessera::paramserver
