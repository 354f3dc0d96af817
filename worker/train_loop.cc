#include "worker/train_loop.h"

#include <glog/logging.h>

#include <algorithm>
#include <utility>

#include "common/timeline.h"

namespace tessera::worker {

TrainLoop::TrainLoop(const TrainConfig& config, const TrainerPlace& place)
    : config_(config), place_(place), leader_(place.worker_index == 0) {}

TrainLoop::~TrainLoop() = default;

Status TrainLoop::CheckConfigAndPlace(const TrainConfig& config, const TrainerPlace& place, const char* who) {
  TESSERA_RETURN_IF_ERROR(ValidateTrainConfig(config));
  return CheckPlace(place, who);
}

data::BatchIteratorOptions TrainLoop::BatchOptions() const {
  data::BatchIteratorOptions bo;
  bo.batch_size = config_.batch_size;
  bo.shuffle = config_.shuffle;
  bo.seed = config_.seed;
  bo.worker = place_.worker_index;
  return bo;
}

Status TrainLoop::ResumeAt(const ResumePoint& resume, const std::function<Status(const data::DataCursor&)>& seek) {
  if (resume.step < 0) return Status::OK();
  next_step_ = resume.step;
  TESSERA_RETURN_IF_ERROR_CTX(seek({resume.epoch, resume.position}), "resuming the data cursor");
  if (leader_) {
    LOG(INFO) << "resuming at step " << resume.step << " (data epoch " << resume.epoch << ", position "
              << resume.position << ")";
  }
  return Status::OK();
}

Status TrainLoop::DeclareDense(std::vector<model::Parameter*> params, std::vector<uint32_t> ids, const char* what,
                               std::vector<model::Parameter*> device_params) {
  dense_ = std::move(params);
  dense_ids_ = std::move(ids);
  collective::Communicator* comm = place_.comm;
  if (!device_params.empty() && place_.device_comm != nullptr) comm = place_.device_comm;
  TESSERA_ASSIGN_OR_RETURN(grad_sync_, GradSync::Create(place_.grad_sync, comm, place_.num_workers, dense_,
                                                        std::move(device_params)));
  server_dense_ = grad_sync_->server_params();
  for (size_t i = 0; i < dense_.size(); ++i) all_dense_.push_back(i);
  std::vector<Handle> pulls;
  IssueDensePulls(next_step_, all_dense_, &pulls);
  return WaitAll(&pulls, what);
}

Status TrainLoop::StartCheckpoints(const ResumePoint& resume) {
  return SetupCheckpoints(place_, resume, metrics_.get(), *grad_sync_, &checkpoints_);
}

void TrainLoop::IssueDensePulls(int64_t step, const std::vector<size_t>& which, std::vector<Handle>* handles) {
  for (size_t i : which) {
    handles->push_back(place_.client->Pull(dense_ids_[i], dense_[i]->value.view(), step));
  }
}

void TrainLoop::IssueDensePushes(int64_t step, std::vector<Handle>* handles) {
  for (size_t i : server_dense_) handles->push_back(grad_sync_->Push(place_.client, i, dense_ids_[i], step));
}

Status TrainLoop::FinishAllReduce() {
  Client* client = place_.client;
  return grad_sync_->FinishStep([client] { return client->requested_exit_code() != 0; });
}

void TrainLoop::EndStep(int64_t step, double loss, int64_t samples) {
  samples_ += samples;
  next_step_ = step + 1;
  PhaseTimer timer(&summary_.phases.report_s, "report");
  place_.client->ReportStep(step, loss, static_cast<uint64_t>(samples));
  if (!leader_) return;
  const double rate = window_.Add(loss, samples, place_.num_workers);
  metrics_->Step(step, static_cast<double>(step + 1) / static_cast<double>(steps_per_epoch_), loss, rate);
  summary_.final_loss = window_.mean_loss();
  const bool last = step + 1 == planned_steps_;
  if ((config_.log_every > 0 && (step + 1) % config_.log_every == 0) || last) {
    window_.Log(step, planned_steps_, steps_per_epoch_, place_.num_workers);
  }
}

Status TrainLoop::Finish() {
  // Every worker's last push has been accepted once every worker passed the barrier; in
  // ssp/asp that is what makes the final pull see all of them (bsp's pull gate would
  // wait for the last update anyway).
  const int64_t final_step = std::max(next_step_, planned_steps_);
  {
    timeline::Span span("barrier", "wait");
    TESSERA_RETURN_IF_ERROR_CTX(place_.client->Barrier(Timeout(), final_step), "waiting for every worker to finish");
  }
  // The coordinator sends the final checkpoint's prepare before it opens this barrier
  // (CheckpointDriver::OnJobEnd), after the boundary above may have looked for it.
  checkpoints_->AtBoundary(final_step, cursor());
  return FinishAfterBarrier();
}

Result<TrainSummary> TrainLoop::Run() {
  const auto start = Clock::now();
  {
    timeline::Span span("setup", "worker");
    TESSERA_RETURN_IF_ERROR(Setup());
  }
  summary_.setup_s = SecondsSince(start);
  const auto loop_start = Clock::now();
  window_.Start();
  Status st = next_step_ < planned_steps_ ? BeforeSteps() : Status::OK();
  for (int64_t step = next_step_; st.ok() && step < planned_steps_; ++step) {
    checkpoints_->AtBoundary(step, cursor());
    {
      timeline::Span span("step", "step", "step", step);
      st = RunStep(step);
    }
    if (st.ok()) st = AfterStep(step + 1);
  }
  if (!st.ok()) {
    AbandonSteps();
    return st;
  }
  // The state after the last step (a checkpoint at the job's end; Finish looks again).
  checkpoints_->AtBoundary(std::max(next_step_, planned_steps_), cursor());
  summary_.train_s = SecondsSince(loop_start);
  const auto final_start = Clock::now();
  TESSERA_RETURN_IF_ERROR(Finish());
  summary_.final_eval_s = SecondsSince(final_start);
  summary_.wall_s = SecondsSince(start);

  summary_.model = config_.model;
  summary_.sync = place_.sync;
  summary_.workers = place_.num_workers;
  summary_.servers = place_.num_servers;
  summary_.steps = planned_steps_;
  summary_.batch_size = config_.batch_size;
  summary_.epochs = static_cast<double>(planned_steps_) / static_cast<double>(steps_per_epoch_);
  summary_.samples = samples_ * place_.num_workers;
  // Throughput of the step loop, without intermediate evaluations (which stall everyone).
  const double busy = summary_.train_s - summary_.phases.eval_s;
  summary_.samples_per_sec = busy > 0 ? static_cast<double>(summary_.samples) / busy : 0;
  summary_.bytes_pushed = place_.client->stats().bytes_pushed.load();
  summary_.bytes_pulled = place_.client->stats().bytes_pulled.load();
  summary_.bytes_allreduced = grad_sync_->bytes_allreduced();
  CompleteSummary();
  if (leader_) metrics_->Summary(summary_);
  LOG(INFO) << PhaseLine();
  return summary_;
}

}  // namespace tessera::worker
