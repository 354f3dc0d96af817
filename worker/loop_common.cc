#include "worker/loop_common.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>

#include "checkpoint/manifest.h"
#include "worker/replica_state.h"

namespace tessera::worker {

namespace {

std::string FormatEta(double seconds) {
  char buf[32];
  if (seconds >= 3600) {
    std::snprintf(buf, sizeof(buf), "%dh%02dm", static_cast<int>(seconds / 3600),
                  static_cast<int>(seconds / 60) % 60);
  } else if (seconds >= 60) {
    std::snprintf(buf, sizeof(buf), "%dm%02ds", static_cast<int>(seconds / 60),
                  static_cast<int>(seconds) % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%.0fs", seconds);
  }
  return buf;
}

}  // namespace

Status CheckPlace(const TrainerPlace& place, const char* who) {
  if (place.client == nullptr) return Status::InvalidArgument(std::string(who) + " needs a client");
  if (place.num_workers < 1 || place.worker_index < 0 || place.worker_index >= place.num_workers) {
    return Status::InvalidArgument("worker index " + std::to_string(place.worker_index) +
                                   " is outside [0, " + std::to_string(place.num_workers) + ")");
  }
  return Status::OK();
}

Clock::duration RequestTimeout(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

Status WaitAll(std::vector<Handle>* handles, Clock::duration timeout, const char* what) {
  Status first;
  for (const Handle& h : *handles) {
    Status st = h.Wait(timeout);
    if (first.ok() && !st.ok()) first = st.WithContext(what);
  }
  handles->clear();
  return first;
}

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double ProgressWindow::Add(double loss, int64_t samples, int num_workers) {
  loss_ += loss;
  steps_ += 1;
  samples_ += samples;
  const double s = SecondsSince(start_);
  return s > 0 ? static_cast<double>(samples_ * num_workers) / s : 0;
}

void ProgressWindow::Log(int64_t step, int64_t planned_steps, int64_t steps_per_epoch, int num_workers) {
  const double window_s = SecondsSince(start_);
  const double rate = window_s > 0 ? static_cast<double>(samples_ * num_workers) / window_s : 0;
  const double elapsed = SecondsSince(loop_start_);
  const double eta =
      elapsed / static_cast<double>(step + 1) * static_cast<double>(planned_steps - step - 1);
  char line[256];
  std::snprintf(line, sizeof(line), "step %lld/%lld  epoch %.2f  loss %.4f  %.0f samples/s  ETA %s",
                static_cast<long long>(step + 1), static_cast<long long>(planned_steps),
                static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch), mean_loss(), rate,
                FormatEta(eta).c_str());
  LOG(INFO) << line;
  loss_ = 0;
  steps_ = 0;
  samples_ = 0;
  start_ = Clock::now();
}

Result<WrittenPart> CheckpointAnswerer::WriteReplicaPart(int64_t step) {
  const std::string dir = client_->pending_checkpoint_dir(step);
  if (dir.empty()) return Status::Aborted("the prepare of step " + std::to_string(step) + " was replaced");
  timeline::Span span("replica write", "checkpoint", "step", step);
  const auto start = Clock::now();
  TESSERA_ASSIGN_OR_RETURN(checkpoint::WriteStats st,
                           WriteReplica(*replica_, dir + "/" + checkpoint::kReplicaDir, method_));
  VLOG(1) << "checkpoint of step " << step << ": wrote " << st.records << " records of all-reduced parameters ("
          << st.file_bytes << " bytes) in " << SecondsSince(start) << " s";
  return WrittenPart{st.digest, st.records};
}

void CheckpointAnswerer::AtBoundary(int64_t step, const data::DataCursor& cursor) {
  boundaries_.emplace_back(step, cursor);
  if (boundaries_.size() > 64) boundaries_.pop_front();
  const int64_t want = client_->pending_checkpoint();
  if (want >= 0 && want <= step) {
    auto it = std::find_if(boundaries_.begin(), boundaries_.end(),
                           [want](const auto& b) { return b.first == want; });
    timeline::Span span("checkpoint prepare", "checkpoint", "step", want);
    if (replica_ != nullptr && want != step) {
      client_->ReportCheckpoint(want, false, "worker " + std::to_string(worker_index_) + " was at step " +
                                                 std::to_string(step) + " when asked for its all-reduced parameters at step " +
                                                 std::to_string(want) + " (too late)",
                                -1, 0, 0);
    } else if (replica_ != nullptr) {
      auto part = WriteReplicaPart(want);
      if (part.ok()) {
        client_->ReportCheckpoint(want, true, "", want, cursor.epoch, cursor.position, *part);
      } else {
        client_->ReportCheckpoint(want, false, "worker " + std::to_string(worker_index_) + ": " + part.status().ToString(),
                                  -1, 0, 0);
      }
    } else if (it != boundaries_.end()) {
      client_->ReportCheckpoint(want, true, "", want, it->second.epoch, it->second.position);
    } else {
      client_->ReportCheckpoint(want, false, "worker " + std::to_string(worker_index_) +
                                                 " no longer knows its state at step " + std::to_string(want),
                                -1, 0, 0);
    }
  }
  const uint64_t bytes = client_->checkpoint_bytes();
  if (metrics_ != nullptr && bytes != bytes_seen_) {
    metrics_->Checkpoint(client_->checkpoint_step(), bytes - bytes_seen_);
    bytes_seen_ = bytes;
  }
}

Status SetupCheckpoints(const TrainerPlace& place, const ResumePoint& resume, MetricsWriter* metrics, GradSync& sync,
                        std::unique_ptr<CheckpointAnswerer>* answerer) {
  const bool holds = !sync.local_states().empty();
  if (holds && resume.step >= 0) {
    TESSERA_RETURN_IF_ERROR_CTX(LoadReplica(sync, resume.checkpoint_path),
                                "restoring the all-reduced parameters from " + resume.checkpoint_path);
  }
  GradSync* replica = holds && place.worker_index == 0 ? &sync : nullptr;
  *answerer = std::make_unique<CheckpointAnswerer>(place.client, place.worker_index, metrics, replica,
                                                   place.checkpoint_write);
  return Status::OK();
}

}  // namespace tessera::worker
