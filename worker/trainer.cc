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
Result<std::unique_ptr<model::Model>> BuildModel(const TrainConfig& config, int64_t input_dim, int num_classes,
                                                 Device device) {
  if (config.model == "mlp") {
    model::MlpConfig mc = config.mlp;
    mc.input_dim = input_dim;
    mc.num_classes = num_classes;
    mc.seed = config.seed;
    mc.device = device;
    TESSERA_ASSIGN_OR_RETURN(std::unique_ptr<model::Mlp> mlp, model::Mlp::Create(mc));
    return std::unique_ptr<model::Model>(std::move(mlp));
  }
  return Status::InvalidArgument("unknown model '" + config.model + "'");
}

}  // namespace

Result<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config, const TrainerPlace& place) {
  TESSERA_RETURN_IF_ERROR(CheckConfigAndPlace(config, place, "Trainer"));
  return std::unique_ptr<Trainer>(new Trainer(config, place));
}

Trainer::~Trainer() = default;

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
  auto it = data::BatchIterator::Create(&train_, BatchOptions());
  if (!it.ok()) {
    return it.status().WithContext("worker " + std::to_string(place_.worker_index) + " holds " +
                                   std::to_string(train_.num_examples) + " training examples");
  }
  batches_ = std::make_unique<data::BatchIterator>(std::move(it).value());
  const ResumePoint resume = place_.client->resume();
  TESSERA_RETURN_IF_ERROR(ResumeAt(resume, [this](const data::DataCursor& c) { return batches_->Seek(c); }));

  // Model: the servers create and own the values (same initialiser, same seed); the
  // optimizer settings travel in the ParamSpecs, so the servers apply them.
  TESSERA_ASSIGN_OR_RETURN(model_, BuildModel(config_, train_.dim, train_.num_classes, place_.device));
  std::vector<model::Parameter*> params = model_->parameters();
  const bool staged = place_.device != Device::kCPU || place_.staging_on_cpu;
  if (staged) {
    TESSERA_ASSIGN_OR_RETURN(params, StartStaging());
  }
  TESSERA_RETURN_IF_ERROR_CTX(place_.client->DeclareParams(model_->Params()), "declaring the model's parameters");
  std::vector<uint32_t> ids;
  for (model::Parameter* p : params) {
    TESSERA_ASSIGN_OR_RETURN(uint32_t id, place_.client->ParamId(p->spec.name));
    ids.push_back(id);
  }
  // A staged run all-reduces the model's own (device) gradients when its communicator can
  // read them (NCCL, or the CPU "device" over MPI; or nothing to reduce with), unless
  // --compress=topk:R needs host ones. Else the mirrors go through place_.comm.
  std::vector<model::Parameter*> device_params;
  const bool comm_reads_device =
      place_.device == Device::kCPU || place_.device_comm != nullptr || place_.num_workers == 1;
  if (staging_ && comm_reads_device && place_.grad_sync.compress.kind != collective::CompressionSpec::Kind::kTopK) {
    device_params = model_->parameters();
  }
  TESSERA_RETURN_IF_ERROR(DeclareDense(std::move(params), std::move(ids), "pulling the initial parameters",
                                       std::move(device_params)));
  TESSERA_RETURN_IF_ERROR(StartCheckpoints(resume));
  if (staging_) {
    for (size_t i = 0; i < dense_.size(); ++i) server_routed_.push_back(false);
    for (size_t i : server_dense_) server_routed_[i] = true;
    // The pulled values, or on resume the restored all-reduced ones.
    TESSERA_RETURN_IF_ERROR(ValuesToDevice(all_dense_));
  } else {
    model_->set_grad_ready_hook([g = grad_sync_.get()](model::Parameter* p) { g->OnGradReady(p); });
  }
  if (leader_) {
    int64_t numel = 0;
    for (const model::Parameter* p : dense_) numel += p->spec.numel();
    LOG(INFO) << "training " << config_.model << " (" << numel << " parameters) for " << planned_steps_
              << " steps (" << steps_per_epoch_ << " per epoch) of " << config_.batch_size << " x "
              << place_.num_workers << " workers, optimizer " << OptimizerKindName(config_.mlp.optimizer.kind)
              << " lr " << config_.mlp.optimizer.lr << ", sync " << place_.sync << ", on "
              << (place_.device == Device::kCUDA ? "CUDA" : "the CPU") << (staging_ ? " (staged)" : "") << "; "
              << train_.num_examples << " local training examples, " << test_.num_examples << " test examples";
  }
  return Status::OK();
}

Status Trainer::RunStep(int64_t step) {
  PhaseTimes& t = summary_.phases;
  data::Batch batch;
  {
    PhaseTimer timer(&t.data_s, "data");
    if (prefetched_) {  // staged: started while the previous step waited for its pulls
      prefetched_ = false;
      batch.size = prefetched_size_;
    } else {
      TESSERA_ASSIGN_OR_RETURN(batch, batches_->Next());
      if (staging_) TESSERA_RETURN_IF_ERROR(staging_->StartBatch(batch.features, batch.labels));
    }
  }
  model::LossResult loss;
  if (staging_) {
    step_ = step;
    PhaseTimer timer(&t.compute_s, "compute", "compute");
    TESSERA_ASSIGN_OR_RETURN(loss, StagedCompute());
  } else {
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
    PhaseTimer timer(&t.push_s, server_dense_.size() < dense_.size() ? "grad_sync" : nullptr, "comm");
    TESSERA_RETURN_IF_ERROR_CTX(FinishAllReduce(), "step " + std::to_string(step));
    if (staging_ && server_dense_.size() < dense_.size()) {
      std::vector<size_t> reduced;
      for (size_t i = 0; i < dense_.size(); ++i) {
        if (!server_routed_[i]) reduced.push_back(i);
      }
      TESSERA_RETURN_IF_ERROR_CTX(ValuesToDevice(reduced), "step " + std::to_string(step));
    }
  }
  std::vector<Handle> pushes, pulls;
  {
    PhaseTimer timer(&t.issue_s, "issue", "comm");
    if (staging_) {
      pushes = std::move(early_pushes_);  // every server-routed gradient, pushed during backward
      early_pushes_.clear();
    } else {
      IssueDensePushes(step, &pushes);
    }
    if (step + 1 < planned_steps_) IssueDensePulls(step + 1, server_dense_, &pulls);
  }
  if (staging_ && step + 1 < planned_steps_) {
    PhaseTimer timer(&t.data_s, "prefetch");
    Status pf = Prefetch();
    if (!pf.ok()) {
      // Nothing may land in the mirrors after we return: wait out what is in flight.
      WaitAll(&pushes, "pushing gradients").IgnoreError();
      WaitAll(&pulls, "pulling parameters").IgnoreError();
      return pf.WithContext("step " + std::to_string(step));
    }
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
    Status pst = staging_ ? WaitPullsToDevice(&pulls, server_dense_, "pulling parameters")
                          : WaitAll(&pulls, "pulling parameters");
    if (st.ok()) st = pst;
  }
  TESSERA_RETURN_IF_ERROR_CTX(st, "step " + std::to_string(step));
  EndStep(step, loss.loss, batch.size);
  return Status::OK();
}

Status Trainer::AfterStep(int64_t done) {
  if (!leader_ || config_.eval_every <= 0 || done % config_.eval_every != 0 || done >= planned_steps_) {
    return Status::OK();
  }
  PhaseTimer timer(&summary_.phases.eval_s, "eval");
  double acc, loss;
  int64_t n;
  return Evaluate(done, &acc, &loss, &n);
}

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

Status Trainer::FinishAfterBarrier() {
  if (!leader_) return Status::OK();
  timeline::Span span("final eval", "worker");
  std::vector<Handle> pulls;
  IssueDensePulls(planned_steps_, server_dense_, &pulls);
  if (staging_) {
    TESSERA_RETURN_IF_ERROR(WaitPullsToDevice(&pulls, server_dense_, "pulling the final parameters"));
  } else {
    TESSERA_RETURN_IF_ERROR(WaitAll(&pulls, "pulling the final parameters"));
  }
  std::vector<const Tensor*> values;
  for (const model::Parameter* p : dense_) values.push_back(&p->value);
  summary_.params_digest = ParamsDigest(values);
  return Evaluate(planned_steps_, &summary_.test_accuracy, &summary_.test_loss, &summary_.test_examples);
}

std::string Trainer::PhaseLine() const {
  const PhaseTimes& p = summary_.phases;
  char line[320];
  std::snprintf(line, sizeof(line),
                "worker %d: %lld steps in %.2f s: data %.2f s, compute %.2f s, issue %.2f s, push wait %.2f s, "
                "pull wait %.2f s, report %.2f s, eval %.2f s",
                place_.worker_index, static_cast<long long>(planned_steps_), summary_.train_s, p.data_s,
                p.compute_s, p.issue_s, p.push_s, p.pull_s, p.report_s, p.eval_s);
  return line;
}

}  // namespace tessera::worker
