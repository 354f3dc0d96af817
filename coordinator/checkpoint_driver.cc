#include "coordinator/checkpoint_driver.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <random>

#include "checkpoint/catalog.h"
#include "checkpoint/crash_point.h"
#include "checkpoint/fs_util.h"
#include "checkpoint/table_budget.h"
#include "common/exit_codes.h"
#include "common/hostname.h"

namespace tessera {

using wire::InMessage;
using wire::Op;
using wire::OutMessage;

namespace {
double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

CheckpointDriver::CheckpointDriver(CheckpointOptions options, int num_servers, int num_workers)
    : options_(std::move(options)), num_servers_(num_servers), num_workers_(num_workers) {}

CheckpointDriver::~CheckpointDriver() {
  if (!marker_path_.empty()) ::unlink(marker_path_.c_str());
}

Status CheckpointDriver::WriteMarker() {
  uint64_t nonce = 0;
  std::random_device rd;
  nonce = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  char name[64];
  std::snprintf(name, sizeof(name), "/.tessera-marker-%016llx", static_cast<unsigned long long>(nonce));
  const std::string path = options_.dir + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError("--checkpoint_dir=" + options_.dir + ": cannot create " + path + ": " + std::strerror(errno));
  const std::string text = "written by the coordinator on " + Hostname() + " (pid " + std::to_string(getpid()) +
                           "); every node of the job must see this file\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return Status::IOError("--checkpoint_dir=" + options_.dir + ": cannot write " + path);
  }
  marker_path_ = path;
  return Status::OK();
}

Status CheckpointDriver::Init() {
  if (options_.every_steps < 0 || options_.every_s < 0) {
    return Status::InvalidArgument("--checkpoint_every_steps and --checkpoint_every_s must be >= 0");
  }
  if (options_.full_every < 1) return Status::InvalidArgument("--checkpoint_full_every must be >= 1");
  if (options_.preempt_grace_s <= 0) return Status::InvalidArgument("--preempt_grace_s must be > 0");
  const bool wants = options_.every_steps > 0 || options_.every_s > 0;
  if (wants && options_.dir.empty()) {
    return Status::InvalidArgument("--checkpoint_every_steps/--checkpoint_every_s need --checkpoint_dir");
  }
  if (!options_.dir.empty() && options_.sync != "bsp" && !dense_on_workers()) {
    return Status::InvalidArgument("checkpoints need --sync=bsp, allreduce or hybrid (a consistent cut needs a "
                                   "step boundary); got --sync=" + options_.sync);
  }
  if (!options_.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.dir, ec);
    if (ec) return Status::InvalidArgument("--checkpoint_dir=" + options_.dir + ": " + ec.message());
    TESSERA_RETURN_IF_ERROR(WriteMarker());
    // Unfinished checkpoints of an earlier run (no manifest) never existed: remove them.
    auto gc = checkpoint::CollectGarbage(options_.dir, 0);
    if (!gc.ok()) LOG(WARNING) << "checkpoint gc: " << gc.status().ToString();
  }
  if (options_.resume != "auto" && options_.resume != "none" && options_.resume.empty()) {
    return Status::InvalidArgument("--resume must be auto, none or a checkpoint step directory");
  }
  TESSERA_ASSIGN_OR_RETURN(std::string chosen, checkpoint::ChooseResume(options_.dir, options_.resume));
  if (!chosen.empty()) {
    TESSERA_ASSIGN_OR_RETURN(checkpoint::Manifest m, checkpoint::ReadManifest(chosen));
    if (m.num_workers != num_workers_) {
      return Status::InvalidArgument("checkpoint " + chosen + " was made by " + std::to_string(m.num_workers) +
                                     " workers; this job has " + std::to_string(num_workers_) +
                                     " (each worker's data partition and cursor would change)");
    }
    if (static_cast<int>(m.workers.size()) != m.num_workers) {
      return Status::InvalidArgument("checkpoint " + chosen + " lacks some workers' state");
    }
    LOG(INFO) << "resuming from the checkpoint of step " << m.step << " (" << chosen << ", made by "
              << m.num_servers << " servers; " << num_servers_ << " servers now)";
    last_committed_ = m.step;
    max_reported_ = m.step - 1;
    resume_dir_ = chosen;
    resume_ = std::move(m);
  }
  // The sparse tables' job-wide memory budget (checkpoint/table_budget.h): said once, and
  // recorded in every manifest so a chain of reshards keeps it.
  const checkpoint::TableBudgetFlags table_flags = checkpoint::TableBudgetFlagsOf(options_.flags);
  const checkpoint::TableBudget budget =
      checkpoint::ResolveTableBudget(table_flags, num_servers_, resume_ ? &*resume_ : nullptr);
  if (!budget.message.empty()) {
    if (budget.kept) {
      LOG(INFO) << budget.message;
    } else {
      LOG(WARNING) << budget.message;
    }
  }
  manifest_flags_ = options_.flags;
  if (table_flags.limit != "0" || !table_flags.per_table.empty()) {
    std::erase_if(manifest_flags_, [](const auto& f) { return f.first == checkpoint::kTableMemoryLimitServersFlag; });
    manifest_flags_.emplace_back(checkpoint::kTableMemoryLimitServersFlag, std::to_string(budget.servers));
  }
  last_commit_time_ = Clock::now();
  return Status::OK();
}

void CheckpointDriver::SetHooks(Membership* members, SendFn send, FinishFn finish) {
  members_ = members;
  send_ = std::move(send);
  finish_ = std::move(finish);
}

void CheckpointDriver::FillWelcome(const Member& m, wire::capnp::Welcome::Builder w) const {
  w.setResumeStep(resume_step());
  // Servers write and read their shards; workers too when they hold the dense state.
  if (m.role == MemberRole::kServer || dense_on_workers()) w.setSharedMarker(marker_path_);
  if (!resume_) return;
  w.setCheckpointPath(resume_dir_);
  if (m.role == MemberRole::kWorker) {
    const int index = m.rank - 1 - num_servers_;
    for (const auto& wp : resume_->workers) {
      if (wp.index == index) {
        w.setResumeEpoch(wp.epoch);
        w.setResumePosition(wp.position);
      }
    }
  }
}

Status CheckpointDriver::CheckModel(const std::vector<ParamSpec>& params) const {
  if (!resume_) return Status::OK();
  return checkpoint::CheckCompatible(*resume_, params).WithContext("resuming from " + resume_dir_);
}

void CheckpointDriver::OnTrainingStarted(const std::vector<ParamSpec>& params) {
  params_ = params;
  training_ = true;
  last_commit_time_ = Clock::now();
  MaybeStart();
}

void CheckpointDriver::OnStepReport(int64_t step) {
  if (step > max_reported_) max_reported_ = step;
  MaybeStart();
}

void CheckpointDriver::Tick() {
  if (ended_) return;
  if (release_barrier_ && Clock::now() >= release_deadline_) {
    LOG(WARNING) << "the checkpoint of step " << (attempt_ ? attempt_->step : -1) << " is still being written "
                 << options_.final_hold_s << " s after training ended; the final state (step " << final_step_
                 << ") is not checkpointed";
    final_step_ = -1;
    std::exchange(release_barrier_, nullptr)();
  }
  if (preempt_requested_ && Clock::now() >= preempt_deadline_) {
    return EndPreempted("--preempt_grace_s ran out before the checkpoint committed");
  }
  MaybeStart();
}

void CheckpointDriver::OnPreempt(const std::string& who, int sig, bool urgent) {
  if (ended_) return;
  if (urgent) {
    return EndPreempted("a second signal (" + std::string(strsignal(sig)) + " to " + who + ")");
  }
  if (preempt_requested_) return;  // the launcher forwards one signal to every process
  preempt_requested_ = true;
  preempt_deadline_ = Clock::now() + std::chrono::duration_cast<Duration>(
                                         std::chrono::duration<double>(options_.preempt_grace_s));
  if (options_.dir.empty()) {
    return EndPreempted("preempted (" + std::string(strsignal(sig)) + " to " + who +
                        "); no --checkpoint_dir, so nothing is saved");
  }
  if (!training_) {
    return EndPreempted("preempted (" + std::string(strsignal(sig)) + " to " + who +
                        ") before training started; nothing new to save");
  }
  LOG(WARNING) << "preemption requested (" << strsignal(sig) << " to " << who
               << "): checkpointing at the next step boundary, then exiting with code " << kExitPreempted;
  // A checkpoint scheduled far ahead (every N steps) would keep the job waiting.
  if (attempt_ && attempt_->step > max_reported_ + kLeadSteps) preempt_needs_new_ = true;
  if (preempt_needs_new_) Abort("replaced by the preemption checkpoint");
  MaybeStart();
}

std::string CheckpointDriver::ResumeHint() const {
  if (options_.dir.empty()) return "no --checkpoint_dir, so a rerun starts from the beginning";
  if (last_committed_ < 0) {
    return "no complete checkpoint in " + options_.dir + " yet, so a rerun starts from the beginning";
  }
  return "the newest complete checkpoint is step " + std::to_string(last_committed_) + " (" +
         checkpoint::StepDir(options_.dir, last_committed_) +
         "): run the job again with the same flags and --checkpoint_dir to resume from it (--resume=auto; the "
         "Slurm template requeues itself, tessera launch --max_restarts restarts)";
}

void CheckpointDriver::EndPreempted(const std::string& how) {
  if (ended_) return;
  ended_ = true;
  finish_(Status::Aborted(how + "; the newest complete checkpoint is step " + std::to_string(last_committed_)),
          kExitPreempted);
}

void CheckpointDriver::MaybeStart() {
  if (ended_ || job_ending_ || after_attempt_ || !training_ || options_.dir.empty() || attempt_) return;
  const int64_t soonest = max_reported_ + 1 + kLeadSteps;
  if (preempt_requested_) return Start(std::max(soonest, last_target_ + 1));
  if (options_.every_steps > 0) {
    const int64_t k = options_.every_steps;
    const int64_t from = std::max({soonest, last_target_ + 1, last_committed_ + 1});
    return Start((from + k - 1) / k * k);
  }
  if (options_.every_s > 0 && SecondsSince(last_commit_time_) >= options_.every_s) {
    return Start(std::max(soonest, last_target_ + 1));
  }
}

void CheckpointDriver::Broadcast(const std::function<void(OutMessage&)>& fill, Op op) {
  for (const Member& m : members_->members()) {
    if (!m.registered || (m.role == MemberRole::kWorker && m.finished)) continue;
    OutMessage out(op);
    fill(out);
    send_(std::move(out), m.routing_id).IgnoreError();  // a gone peer is caught by heartbeats
  }
}

void CheckpointDriver::Start(int64_t step) {
  Attempt a;
  a.step = step;
  a.full = last_committed_ < 0 || checkpoints_since_full_ + 1 >= options_.full_every || resume_step() == last_committed_;
  a.parent = a.full ? -1 : last_committed_;
  a.dir = checkpoint::StepDir(options_.dir, step);
  a.started = Clock::now();
  a.servers.resize(static_cast<size_t>(num_servers_));
  a.workers.resize(static_cast<size_t>(num_workers_));
  last_target_ = step;
  started_steps_.insert(step);
  preempt_needs_new_ = false;
  std::error_code ec;
  std::filesystem::remove_all(a.dir, ec);  // leftovers of an attempt that never committed
  std::filesystem::create_directories(a.dir, ec);
  if (ec) {
    LOG(ERROR) << "cannot create " << a.dir << ": " << ec.message() << "; checkpoints are off";
    attempt_.reset();
    return;
  }
  VLOG(1) << "checkpoint of step " << step << ": prepare (" << (a.full ? "full" : "incremental") << ")";
  attempt_ = std::move(a);
  const Attempt& at = *attempt_;
  Broadcast([&](OutMessage& out) {
    out.SetStep(at.step);
    auto p = out.header().getBody().initCkptPrepare();
    p.setStep(at.step);
    p.setDirectory(at.dir);
    p.setFull(at.full);
    p.setParentStep(at.parent);
  }, Op::CKPT_PREPARE);
}

bool CheckpointDriver::HoldJobEnd(std::function<void()> then) {
  if (!attempt_) return false;
  for (const auto& w : attempt_->workers) {
    if (!w) {
      Abort("the workers finished before reaching its step");
      return false;
    }
  }
  LOG(INFO) << "every worker finished; waiting for the checkpoint of step " << attempt_->step << " to commit";
  after_attempt_ = std::move(then);
  return true;
}

void CheckpointDriver::OnJobEnd(int64_t final_step, std::function<void()> release) {
  const bool periodic = options_.every_steps > 0 || options_.every_s > 0;
  if (ended_ || job_ending_ || !training_ || options_.dir.empty() || !periodic) {
    job_ending_ = true;
    return release();
  }
  job_ending_ = true;
  final_step_ = final_step;
  if (attempt_ && attempt_->step == final_step) return release();
  const std::string replaced = "replaced by the checkpoint of the job's final step " + std::to_string(final_step);
  if (attempt_ && attempt_->step > final_step) {
    Abort(replaced, /*quiet=*/true);
  } else if (attempt_) {
    const bool workers_answered =
        std::all_of(attempt_->workers.begin(), attempt_->workers.end(), [](const auto& w) { return w.has_value(); });
    if (workers_answered) {
      // Only the servers' write is left: losing it for the final one would trade a
      // nearly complete checkpoint for one that may fail.
      LOG(INFO) << "training ended at step " << final_step << "; the checkpoint of step " << attempt_->step
                << " is being written first";
      release_barrier_ = std::move(release);
      release_deadline_ =
          Clock::now() + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(options_.final_hold_s));
      return;
    }
    Abort(replaced);
  }
  release_barrier_ = std::move(release);
  StartFinalAndRelease();
}

void CheckpointDriver::StartFinalAndRelease() {
  if (!ended_ && !attempt_ && final_step_ > last_committed_) {
    if (started_steps_.count(final_step_) != 0) {
      LOG(WARNING) << "the checkpoint of the final step " << final_step_
                   << " failed earlier in this job; it is not tried again";
    } else {
      LOG(INFO) << "training ended at step " << final_step_ << "; checkpointing the final state";
      Start(final_step_);
    }
  }
  if (release_barrier_) std::exchange(release_barrier_, nullptr)();
}

void CheckpointDriver::Abort(const std::string& why, bool quiet) {
  if (!attempt_) return;
  if (quiet) {
    LOG(INFO) << "checkpoint of step " << attempt_->step << " withdrawn: " << why;
  } else {
    LOG(WARNING) << "checkpoint of step " << attempt_->step << " abandoned: " << why;
  }
  const int64_t step = attempt_->step;
  attempt_.reset();
  Broadcast([&](OutMessage& out) {
    auto c = out.header().getBody().initCkptCommit();
    c.setStep(step);
    c.setCommitted(false);
  }, Op::CKPT_COMMIT);
  // The abandoned step's directory (created at prepare) has no MANIFEST: collect it now
  // rather than at the next start, since a job ending here may never start again. A
  // server still writing into it fails that write, which no longer matters.
  auto gc = checkpoint::CollectGarbage(options_.dir, options_.keep);
  if (!gc.ok()) LOG(WARNING) << "checkpoint gc: " << gc.status().ToString();
  if (release_barrier_) return StartFinalAndRelease();
  if (after_attempt_) std::exchange(after_attempt_, nullptr)();
}

void CheckpointDriver::OnDone(const Member& m, const InMessage& msg) {
  auto body = msg.header().getBody();
  if (!body.isCkptDone()) return;
  auto d = body.getCkptDone();
  if (!attempt_ || d.getStep() != attempt_->step) return;  // a late answer to an abandoned attempt
  const std::string who = members_->Describe(m.rank);
  if (!d.getOk()) {
    Abort(who + ": " + d.getMessage().cStr());
    if (ended_) return;
    return MaybeStart();
  }
  if (m.role == MemberRole::kServer) {
    checkpoint::ServerPart s;
    s.index = m.rank - 1;
    s.dir = "server-" + std::to_string(s.index);
    s.digest = d.getDigest();
    s.store_digest = d.getStoreDigest();
    s.records = d.getRecords();
    s.bytes = d.getBytesWritten();
    attempt_->servers[static_cast<size_t>(s.index)] = std::move(s);
  } else {
    checkpoint::WorkerPart w;
    w.index = m.rank - 1 - num_servers_;
    w.next_step = d.getNextStep();
    w.epoch = d.getDataEpoch();
    w.position = d.getDataPosition();
    if (w.next_step != attempt_->step) {
      Abort(who + " reported its state at step " + std::to_string(w.next_step));
      return MaybeStart();
    }
    if (w.index == 0 && dense_on_workers() && d.getRecords() > 0) {
      // Worker 0 wrote the all-reduced dense parameters (checkpoint::kReplicaPart; none
      // for a model without dense parameters).
      checkpoint::ServerPart r;
      r.index = checkpoint::kReplicaPart;
      r.dir = checkpoint::kReplicaDir;
      r.digest = d.getDigest();
      r.store_digest = d.getStoreDigest();
      r.records = d.getRecords();
      attempt_->replica = std::move(r);
    }
    attempt_->workers[static_cast<size_t>(w.index)] = w;
  }
  for (const auto& s : attempt_->servers) {
    if (!s) return;
  }
  for (const auto& w : attempt_->workers) {
    if (!w) return;
  }
  Commit();
}

void CheckpointDriver::Commit() {
  Attempt a = std::move(*attempt_);
  attempt_.reset();
  checkpoint::Manifest mf;
  mf.step = a.step;
  mf.created_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
  mf.full = a.full;
  mf.parent_step = a.parent;
  mf.num_servers = num_servers_;
  mf.num_workers = num_workers_;
  mf.sync = options_.sync;
  mf.grad_reduce = options_.grad_reduce;
  mf.chunk_bytes = options_.chunk_bytes;
  mf.flags = manifest_flags_;
  mf.params = params_;
  Status st;
  if (a.replica) a.servers.push_back(std::move(a.replica));
  for (auto& s : a.servers) {
    auto files = checkpoint::ListFiles(a.dir + "/" + s->dir);
    if (!files.ok()) {
      st = files.status();
      break;
    }
    s->files = std::move(files).value();
    s->bytes = 0;
    for (const auto& f : s->files) s->bytes += f.size;
    mf.bytes_written += s->bytes;
    mf.servers.push_back(std::move(*s));
  }
  for (auto& w : a.workers) mf.workers.push_back(*w);
  // Everything the MANIFEST points at must be durable before it is written: the step
  // directory's entry in the root (and the root's in its parent, on the first commit)
  // and the servers' directories in the step directory. Otherwise a power loss after GC
  // (below) removed the older checkpoints could leave neither.
  if (st.ok()) st = checkpoint::FsyncDir(options_.dir);
  if (st.ok()) st = checkpoint::FsyncDir(a.dir);
  if (st.ok() && !root_entry_synced_) {
    st = checkpoint::FsyncDir(std::filesystem::absolute(options_.dir).parent_path().string());
    root_entry_synced_ = st.ok();
  }
  bool in_place = false;
  if (st.ok()) {
    checkpoint::CrashPoint("coordinator_before_commit");
    st = checkpoint::WriteFileAtomically(a.dir + "/" + checkpoint::kManifestName, checkpoint::SerializeManifest(mf),
                                         &in_place);
  }
  if (!st.ok() && !in_place) {
    LOG(ERROR) << "checkpoint of step " << a.step << " not committed: " << st.ToString();
    attempt_ = std::move(a);
    Abort("writing the manifest failed");
    return;
  }
  // The MANIFEST is in place but its directory fsync failed: --resume=auto would use it,
  // so it is reported committed, as it is, with the risk named, and nothing older is
  // collected (docs/checkpoints.md "Durability").
  const bool durable = st.ok();
  if (!durable) {
    LOG(ERROR) << "checkpoint of step " << a.step << " committed but not known to be durable (" << st.ToString()
               << "): a power loss may lose it; older checkpoints are kept";
  }
  checkpoint::CrashPoint("after_commit");
  last_committed_ = a.step;
  last_commit_time_ = Clock::now();
  checkpoints_since_full_ = a.full ? 0 : checkpoints_since_full_ + 1;
  char line[256];
  std::snprintf(line, sizeof(line),
                "checkpoint of step %" PRId64 " committed: %s, %.2f MB written by %d servers%s in %.2f s", a.step,
                a.full ? "full" : "incremental", static_cast<double>(mf.bytes_written) / 1e6, num_servers_,
                dense_on_workers() ? " and worker 0" : "", SecondsSince(a.started));
  LOG(INFO) << line;
  const uint64_t bytes = mf.bytes_written;
  Broadcast([&](OutMessage& out) {
    auto c = out.header().getBody().initCkptCommit();
    c.setStep(a.step);
    c.setCommitted(true);
    c.setBytesWritten(bytes);
  }, Op::CKPT_COMMIT);
  checkpoint::CrashPoint("before_gc");
  if (durable) {
    auto gc = checkpoint::CollectGarbage(options_.dir, options_.keep);
    if (!gc.ok()) LOG(WARNING) << "checkpoint gc: " << gc.status().ToString();
  }
  if (release_barrier_) return StartFinalAndRelease();
  if (after_attempt_) return std::exchange(after_attempt_, nullptr)();
  if (preempt_requested_) return EndPreempted("preempted after the checkpoint of step " + std::to_string(a.step));
  MaybeStart();
}

}  // namespace tessera
