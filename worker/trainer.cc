#include "worker/trainer.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>

#include "common/timeline.h"
#include "worker/model/evaluate.h"
#include "worker/model/mlp.h"

namespace tessera::worker {

namespace {

// One case per entry of KnownModels().
Result<std::unique_ptr<model::Model>> BuildModel(const TrainConfig& config, int64_t input_dim, int num_classes) {
  if (config.model == "mlp") {
    model::MlpConfig mc = config.mlp;
    mc.input_dim = input_dim;
    mc.num_classes = num_classes;
    mc.seed = config.seed;
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<model::Mlp> mlp, model::Mlp::Create(mc));
    return std::unique_ptr<model::Model>(std::move(mlp));
  }
  return Status::InvalidArgument("unknown model '" + config.model + "'");
}

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config, const TrainerPlace& place) {
  TESSERA_RETURN_IF_ERROR(ValidateTrainConfig(config));
  TESSERA_RETURN_IF_ERROR(CheckPlace(place, "Trainer"));
  return std::unique_ptr<Trainer>(new Trainer(config, place));
}

Trainer::Trainer(const TrainConfig& config, const TrainerPlace& place)
    : config_(config), place_(place), leader_(place.worker_index == 0) {}

Trainer::~Trainer() = default;

TrainerState Trainer::state() const {
  TrainerState s;
  s.next_step = next_step_;
  if (batches_) s.cursor = batches_->cursor();
  return s;
}

void Trainer::IssuePulls(int64_t step, const std::vector<size_t>& which, std::vector<Handle>* handles) {
  for (size_t i : which) {
    handles->push_back(place_.client->Pull(param_ids_[i], params_[i]->value.view(), step));
  }
}

Status Trainer::Setup() {
  // Data: this worker's contiguous shard of the training set; worker 0 also the test set.
  data::LoadOptions lo;
  lo.rank = place_.worker_index;
  lo.world = place_.num_workers;
  lo.limit = config_.train_limit;
  auto train = data::LoadMnist(config_.data_dir, data::Split::kTrain, lo);
  if (!train.ok()) return train.status().WithContext("loading the training set (--data=" + config_.data_dir + ")");
  train_ = std::move(train).value();
  if (leader_) {
    data::LoadOptions to;
    to.limit = config_.test_limit;
    auto test = data::LoadMnist(config_.data_dir, data::Split::kTest, to);
    if (!test.ok()) return test.status().WithContext("loading the test set (--data=" + config_.data_dir + ")");
    test_ = std::move(test).value();
    TESSERA_ASSIGN_OR_RETURN(metrics_, MetricsWriter::Open(config_.metrics_out));
  }
  const int64_t used = config_.train_limit > 0 ? std::min(config_.train_limit, train_.total_examples)
                                               : train_.total_examples;
  steps_per_epoch_ = StepsPerEpoch(config_.batch_size, used, place_.num_workers);
  planned_steps_ = PlannedSteps(config_, used, place_.num_workers);
  data::BatchIteratorOptions bo;
  bo.batch_size = config_.batch_size;
  bo.shuffle = config_.shuffle;
  bo.seed = config_.seed;
  bo.worker = place_.worker_index;
  auto it = data::BatchIterator::Create(&train_, bo);
  if (!it.ok()) {
    return it.status().WithContext("worker " + std::to_string(place_.worker_index) + " holds " +
                                   std::to_string(train_.num_examples) + " training examples");
  }
  batches_ = std::make_unique<data::BatchIterator>(std::move(it).value());
  const ResumePoint resume = place_.client->resume();
  if (resume.step >= 0) {
    next_step_ = resume.step;
    TESSERA_RETURN_IF_ERROR_CTX(batches_->Seek({resume.epoch, resume.position}), "resuming the data cursor");
    if (leader_) LOG(INFO) << "resuming at step " << resume.step << " (data epoch " << resume.epoch << ", position " << resume.position << ")";
  }

  // Model: the servers create and own the values (same initialiser, same seed); the
  // optimizer settings travel in the ParamSpecs, so the servers apply them.
  TESSERA_ASSIGN_OR_RETURN(model_, BuildModel(config_, train_.dim, train_.num_classes));
  params_ = model_->parameters();
  TESSERA_RETURN_IF_ERROR_CTX(place_.client->DeclareParams(model_->Params()), "declaring the model's parameters");
  for (model::Parameter* p : params_) {
    TESSERA_ASSIGN_OR_RETURN(uint32_t id, place_.client->ParamId(p->spec.name));
    param_ids_.push_back(id);
  }
  // Every worker starts from the servers' initial values, whatever the routing.
  TESSERA_ASSIGN_OR_RETURN(grad_sync_, GradSync::Create(place_.grad_sync, place_.comm, place_.num_workers, params_));
  server_params_ = grad_sync_->server_params();
  for (size_t i = 0; i < params_.size(); ++i) all_params_.push_back(i);
  model_->set_grad_ready_hook([g = grad_sync_.get()](model::Parameter* p) { g->OnGradReady(p); });
  std::vector<Handle> pulls;
  IssuePulls(next_step_, all_params_, &pulls);
  TESSERA_RETURN_IF_ERROR(WaitAll(&pulls, "pulling the initial parameters"));
  TESSERA_RETURN_IF_ERROR(SetupCheckpoints(place_, resume, metrics_.get(), *grad_sync_, &checkpoints_));
  if (leader_) {
    int64_t numel = 0;
    for (const model::Parameter* p : params_) numel += p->spec.numel();
    LOG(INFO) << "training " << config_.model << " (" << numel << " parameters) for " << planned_steps_
              << " steps (" << steps_per_epoch_ << " per epoch) of " << config_.batch_size << " x "
              << place_.num_workers << " workers, optimizer " << OptimizerKindName(config_.mlp.optimizer.kind)
              << " lr " << config_.mlp.optimizer.lr << ", sync " << place_.sync << "; "
              << train_.num_examples << " local training examples, " << test_.num_examples << " test examples";
  }
  return Status::OK();
}

Status Trainer::RunStep(int64_t step) {
  PhaseTimes& t = summary_.phases;
  data::Batch batch;
  {
    PhaseTimer timer(&t.data_s, "data");
    TESSERA_ASSIGN_OR_RETURN(batch, batches_->Next());
  }
  model::LossResult loss;
  {
    PhaseTimer timer(&t.compute_s, "compute", "compute");
    {
      timeline::Span span("forward", "compute");
      TESSERA_ASSIGN_OR_RETURN(loss, model_->Forward(batch.features, batch.labels));
    }
    timeline::Span span("backward", "compute");
    TESSERA_RETURN_IF_ERROR(model_->Backward());
  }
  {
    // All-reduced parameters (--sync=allreduce|hybrid): wait and apply the update here.
    PhaseTimer timer(&t.push_s, server_params_.size() < params_.size() ? "grad_sync" : nullptr, "comm");
    Client* client = place_.client;
    TESSERA_RETURN_IF_ERROR_CTX(grad_sync_->FinishStep([client] { return client->requested_exit_code() != 0; }),
                                "step " + std::to_string(step));
  }
  std::vector<Handle> pushes, pulls;
  {
    PhaseTimer timer(&t.issue_s, "issue", "comm");
    for (size_t i : server_params_) {
      pushes.push_back(grad_sync_->Push(place_.client, i, param_ids_[i], step));
    }
    if (step + 1 < planned_steps_) IssuePulls(step + 1, server_params_, &pulls);
  }
  Status st;
  {
    PhaseTimer timer(&t.push_s, "push", "comm");
    st = WaitAll(&pushes, "pushing gradients");
  }
  {
    // bsp/ssp: the servers answer once the step clock allows, so this is also the wait
    // for the slowest worker.
    PhaseTimer timer(&t.pull_s, "pull", "comm");
    Status pst = WaitAll(&pulls, "pulling parameters");
    if (st.ok()) st = pst;
  }
  TESSERA_RETURN_IF_ERROR_CTX(st, "step " + std::to_string(step));
  samples_ += batch.size;
  next_step_ = step + 1;

  PhaseTimer timer(&t.report_s, "report");
  place_.client->ReportStep(step, loss.loss, static_cast<uint64_t>(batch.size));
  if (!leader_) return Status::OK();
  const double rate = window_.Add(loss.loss, batch.size, place_.num_workers);
  metrics_->Step(step, static_cast<double>(step + 1) / steps_per_epoch_, loss.loss, rate);
  summary_.final_loss = window_.mean_loss();
  const bool last = step + 1 == planned_steps_;
  if ((config_.log_every > 0 && (step + 1) % config_.log_every == 0) || last) {
    window_.Log(step, planned_steps_, steps_per_epoch_, place_.num_workers);
  }
  return Status::OK();
}

void Trainer::CheckpointBoundary(int64_t step) { checkpoints_->AtBoundary(step, batches_->cursor()); }

Status Trainer::Evaluate(int64_t step, double* accuracy, double* loss, int64_t* examples) {
  TESSERA_ASSIGN_OR_RETURN(model::EvalResult r, model::Evaluate(*model_, test_, config_.eval_batch_size));
  *accuracy = r.accuracy();
  *loss = r.loss;
  *examples = r.count;
  metrics_->Eval(step, r.accuracy(), r.loss, r.count);
  char line[160];
  std::snprintf(line, sizeof(line), "eval after %lld steps: test accuracy %.4f, test loss %.4f (%lld examples)",
                static_cast<long long>(step), r.accuracy(), r.loss, static_cast<long long>(r.count));
  LOG(INFO) << line;
  return Status::OK();
}

Status Trainer::Finish() {
  // Every worker's last push has been accepted once every worker passed the barrier; in
  // ssp/asp that is what makes the final pull see all of them (bsp's pull gate would
  // wait for the last update anyway).
  {
    timeline::Span span("barrier", "wait");
    TESSERA_RETURN_IF_ERROR_CTX(place_.client->Barrier(RequestTimeout(config_.request_timeout_s)),
                                "waiting for every worker to finish");
  }
  if (!leader_) return Status::OK();
  timeline::Span span("final eval", "worker");
  std::vector<Handle> pulls;
  IssuePulls(planned_steps_, server_params_, &pulls);
  TESSERA_RETURN_IF_ERROR(WaitAll(&pulls, "pulling the final parameters"));
  std::vector<const Tensor*> values;
  for (const model::Parameter* p : params_) values.push_back(&p->value);
  summary_.params_digest = ParamsDigest(values);
  return Evaluate(planned_steps_, &summary_.test_accuracy, &summary_.test_loss, &summary_.test_examples);
}

Result<TrainSummary> Trainer::Run() {
  const auto start = Clock::now();
  {
    timeline::Span span("setup", "worker");
    TESSERA_RETURN_IF_ERROR(Setup());
  }
  summary_.setup_s = SecondsSince(start);
  const auto loop_start = Clock::now();
  window_.Start();
  for (int64_t step = next_step_; step < planned_steps_; ++step) {
    CheckpointBoundary(step);
    {
      timeline::Span span("step", "step", "step", step);
      TESSERA_RETURN_IF_ERROR(RunStep(step));
    }
    const int64_t done = step + 1;
    if (leader_ && config_.eval_every > 0 && done % config_.eval_every == 0 && done < planned_steps_) {
      PhaseTimer timer(&summary_.phases.eval_s, "eval");
      double acc, loss;
      int64_t n;
      TESSERA_RETURN_IF_ERROR(Evaluate(done, &acc, &loss, &n));
    }
  }
  CheckpointBoundary(std::max(next_step_, planned_steps_));
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
  summary_.epochs = static_cast<double>(planned_steps_) / steps_per_epoch_;
  summary_.samples = samples_ * place_.num_workers;
  // Throughput of the step loop, without intermediate evaluations (which stall everyone).
  const double busy = summary_.train_s - summary_.phases.eval_s;
  summary_.samples_per_sec = busy > 0 ? summary_.samples / busy : 0;
  summary_.bytes_pushed = place_.client->stats().bytes_pushed.load();
  summary_.bytes_pulled = place_.client->stats().bytes_pulled.load();
  summary_.bytes_allreduced = grad_sync_->bytes_allreduced();
  if (leader_) metrics_->Summary(summary_);

  const PhaseTimes& p = summary_.phases;
  char line[320];
  std::snprintf(line, sizeof(line),
                "worker %d: %lld steps in %.2f s: data %.2f s, compute %.2f s, issue %.2f s, push wait %.2f s, "
                "pull wait %.2f s, report %.2f s, eval %.2f s",
                place_.worker_index, static_cast<long long>(planned_steps_), summary_.train_s, p.data_s,
                p.compute_s, p.issue_s, p.push_s, p.pull_s, p.report_s, p.eval_s);
  LOG(INFO) << line;
  return summary_;
}

}  // namespace tessera::worker
