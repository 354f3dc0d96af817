// CheckpointDriver: the coordinator's side of checkpoints and preemption
// (docs/checkpoints.md). It decides when to checkpoint, runs the two-phase commit and
// ends a preempted job.
//
//   trigger (every N steps, every T seconds, a preemption request)
//     -> pick step s ahead of every worker (max reported step + kLeadSteps, or the next
//        multiple of N) and send CheckpointPrepare{s} to every server and worker
//     <- CheckpointDone from each: servers after their background write (digest, files),
//        workers with their state at the boundary of s (under --sync=allreduce|hybrid
//        worker 0 first writes the dense parameters it holds, checkpoint::kReplicaPart)
//     -> all ok: write MANIFEST atomically (this is the commit), CheckpointCommit{true},
//        retention / garbage collection; any not ok: CheckpointCommit{false}, the
//        unfinished directory is collected later, and the trigger fires again.
//   preemption: after the commit of the checkpoint it asked for, the job ends with
//   kExitPreempted for everyone; an urgent request (second signal) or the grace period
//   running out ends it at once, leaving the previous checkpoint as it is.
//
// Resume: at start-up ChooseResume() picks the checkpoint (verifying it); Welcome
// messages carry its step, its directory and each worker's data cursor.
//
// Threading: constructed before the reactor starts; every other method runs on the
// coordinator's reactor thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_set>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint/manifest.h"
#include "common/clock.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "coordinator/membership.h"
#include "wire/message.h"

namespace tessera {

struct CheckpointOptions {
  std::string dir;             // --checkpoint_dir; "" disables checkpoints
  int64_t every_steps = 0;     // --checkpoint_every_steps (0: off)
  double every_s = 0;          // --checkpoint_every_s (0: off)
  int keep = 3;                // --checkpoint_keep (<= 0: keep all)
  int full_every = 1;          // --checkpoint_full_every: every k-th checkpoint is full
  std::string resume = "auto"; // --resume: auto, none or a step directory
  double preempt_grace_s = 60; // --preempt_grace_s
  // How long the end-of-training barrier may be held for an earlier checkpoint's write
  // (OnJobEnd): under the workers' barrier deadline (--request_timeout_s).
  double final_hold_s = 30;
  // Job facts recorded in the manifest.
  std::string sync;
  // --sync=allreduce|hybrid (collective::IsCollectiveSync): the dense parameters live on
  // the workers and worker 0 writes them (checkpoint::kReplicaPart).
  bool dense_on_workers = false;
  std::string grad_reduce;
  uint64_t chunk_bytes = 0;
  std::vector<std::pair<std::string, std::string>> flags;
};

class CheckpointDriver {
 public:
  using SendFn = std::function<Status(wire::OutMessage&&, const std::string& routing_id)>;
  using FinishFn = std::function<void(Status, int exit_code)>;

  CheckpointDriver(CheckpointOptions options, int num_servers, int num_workers);
  // Removes the shared-directory marker file.
  ~CheckpointDriver();
  CheckpointDriver(const CheckpointDriver&) = delete;
  CheckpointDriver& operator=(const CheckpointDriver&) = delete;

  // Start-up: validates the options, writes the shared-directory marker (a file in
  // --checkpoint_dir whose path every peer that reads or writes checkpoints gets in its
  // Welcome and must see: a node-local directory on another node is refused at start),
  // and picks the checkpoint to resume from.
  // InvalidArgument for bad flags, a --resume path that does not verify, or a
  // checkpoint made for another number of workers.
  Status Init();
  void SetHooks(Membership* members, SendFn send, FinishFn finish);

  // Loop thread.
  int64_t resume_step() const { return resume_ ? resume_->step : -1; }
  int64_t last_checkpoint_step() const { return last_committed_; }
  void FillWelcome(const Member& m, wire::capnp::Welcome::Builder w) const;
  // A resumed job must declare the checkpoint's model (the first mismatch is named).
  Status CheckModel(const std::vector<ParamSpec>& params) const;
  void OnTrainingStarted(const std::vector<ParamSpec>& params);
  void OnStepReport(int64_t step);
  void OnDone(const Member& m, const wire::InMessage& msg);
  void OnPreempt(const std::string& who, int sig, bool urgent);
  void Tick();
  bool preempting() const { return preempt_requested_; }
  // A checkpoint is being taken (prepared and not yet committed or abandoned).
  bool checkpointing() const { return attempt_.has_value(); }
  // For the message of a job that failed: the newest complete checkpoint (its directory)
  // and how to resume from it, or that a rerun starts over.
  std::string ResumeHint() const;
  // Every worker finished: when a checkpoint they all answered is still being written,
  // `then` runs after it commits or fails (returns true); otherwise false, and any
  // attempt nobody can answer any more is abandoned.
  bool HoldJobEnd(std::function<void()> then);
  // Every worker is in its end-of-training barrier at step boundary `final_step`;
  // `release` opens it. With periodic checkpoints on, the job's final state is
  // checkpointed: the prepare of `final_step` is sent before `release` runs, so it
  // reaches each worker before its barrier reply and the worker answers it right after
  // the barrier. An attempt at `final_step` stays; one scheduled past the end is
  // withdrawn; an earlier one whose workers all answered is waited for first (up to
  // options' final_hold_s, then the barrier opens without a final checkpoint). No
  // attempt starts after the final one.
  void OnJobEnd(int64_t final_step, std::function<void()> release);

  // Steps between the newest reported step and a triggered checkpoint's step: far enough
  // that no server has passed it when the prepare arrives.
  static constexpr int64_t kLeadSteps = 3;
  // The longest the end-of-training barrier is held for an earlier checkpoint's write
  // (CheckpointOptions::final_hold_s is at most this, and half --request_timeout_s).
  static constexpr double kFinalHoldS = 30;

 private:
  Status WriteMarker();
  struct Attempt {
    int64_t step = 0;
    bool full = true;
    int64_t parent = -1;
    std::string dir;
    Clock::time_point started;
    std::vector<std::optional<checkpoint::ServerPart>> servers;
    std::vector<std::optional<checkpoint::WorkerPart>> workers;
    std::optional<checkpoint::ServerPart> replica;  // worker 0's, with dense_on_workers()
  };

  bool dense_on_workers() const { return options_.dense_on_workers; }

  void MaybeStart();
  void Start(int64_t step);
  // `quiet`: logged at INFO (an attempt withdrawn by design, not a failure).
  void Abort(const std::string& why, bool quiet = false);
  void Commit();
  void Broadcast(const std::function<void(wire::OutMessage&)>& fill, wire::Op op);
  void EndPreempted(const std::string& how);
  // The held end-of-training barrier: starts the final attempt (when still useful) and
  // opens the barrier.
  void StartFinalAndRelease();

  const CheckpointOptions options_;
  const int num_servers_;
  const int num_workers_;
  Membership* members_ = nullptr;
  SendFn send_;
  FinishFn finish_;

  std::optional<checkpoint::Manifest> resume_;
  std::string resume_dir_;
  // What every manifest records as flags: options_.flags with the resolved
  // table_memory_limit_servers (checkpoint/table_budget.h).
  std::vector<std::pair<std::string, std::string>> manifest_flags_;
  std::vector<ParamSpec> params_;
  bool training_ = false;
  int64_t max_reported_ = -1;
  int64_t last_committed_ = -1;
  bool root_entry_synced_ = false;  // the checkpoint root's entry in its parent was fsynced
  int64_t last_target_ = -1;        // newest step an attempt was started for
  // Every step an attempt was started for: the final attempt never reuses one (its
  // directory could still be written by a server of the earlier attempt, whose late
  // answer would count for the new one).
  std::unordered_set<int64_t> started_steps_;
  int checkpoints_since_full_ = 0;  // incremental: commits since the last full one
  Clock::time_point last_commit_time_;
  std::optional<Attempt> attempt_;
  bool preempt_requested_ = false;
  bool preempt_needs_new_ = false;  // the pending attempt was started before the request
  Clock::time_point preempt_deadline_;
  bool ended_ = false;
  bool job_ending_ = false;  // OnJobEnd ran: no new attempts
  int64_t final_step_ = -1;
  std::function<void()> release_barrier_;  // OnJobEnd is waiting for attempt_ to end
  Clock::time_point release_deadline_;
  std::function<void()> after_attempt_;  // HoldJobEnd
  std::string marker_path_;  // "" without --checkpoint_dir
};

}  // namespace tessera
