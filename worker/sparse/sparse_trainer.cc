#include "worker/sparse/sparse_trainer.h"

#include <glog/logging.h>

#include <algorithm>
#include <cstdio>

#include "collective/sync_mode.h"
#include "common/hash.h"
#include "common/timeline.h"
#include "worker/sparse/ctr_workload.h"
#include "worker/sparse/dlrm_workload.h"
#include "worker/sparse/word2vec_workload.h"

namespace tessera::worker::sparse {

Result<std::unique_ptr<SparseWorkload>> CreateWorkload(const TrainConfig& config, int worker_index,
                                                       int num_workers, std::optional<Device> dense_device) {
  if (config.model == "word2vec") return CreateWord2VecWorkload(config, worker_index, num_workers);
  if (config.model == "dlrm") return CreateDlrmWorkload(config, worker_index, num_workers, worker_index == 0);
  return CreateCtrWorkload(config, worker_index, num_workers, worker_index == 0, dense_device);
}

std::vector<ParamSpec> SparseTableSpecs(const TrainConfig& config) {
  if (config.model == "word2vec") return Word2VecSparseParams(config);
  if (config.model == "dlrm") return DlrmSparseParams(config);
  return CtrSparseParams(config);
}

Status CheckSparseSync(const TrainConfig& config, const std::string& sync) {
  if (collective::GradSyncModeOf(sync) != collective::GradSyncMode::kAllReduce) return Status::OK();
  std::string names;
  for (const ParamSpec& p : SparseTableSpecs(config)) names += (names.empty() ? "" : ", ") + p.name;
  return Status::InvalidArgument("--sync=allreduce cannot train --model=" + config.model + ": its sparse tables (" +
                                 names +
                                 ") would be all-reduced whole on every step; use --sync=hybrid (dense "
                                 "parameters by all-reduce, sparse tables through the parameter servers)");
}

Result<std::unique_ptr<SparseTrainer>> SparseTrainer::Create(const TrainConfig& config,
                                                             const TrainerPlace& place) {
  TESSERA_RETURN_IF_ERROR(CheckConfigAndPlace(config, place, "SparseTrainer"));
  if (!IsSparseModel(config.model))
    return Status::InvalidArgument("'" + config.model + "' is not a sparse model");
  TESSERA_RETURN_IF_ERROR(CheckSparseSync(config, place.grad_sync.sync));
  return std::unique_ptr<SparseTrainer>(new SparseTrainer(config, place));
}

data::DataCursor SparseTrainer::cursor() const {
  if (prepared_ >= next_step_) return batch_cursor_[next_step_ & 1];
  return batches_ ? batches_->cursor() : data::DataCursor{};
}

Status SparseTrainer::Setup() {
  const bool staged = place_.device != Device::kCPU || place_.staging_on_cpu;
  TESSERA_ASSIGN_OR_RETURN(workload_, CreateWorkload(config_, place_.worker_index, place_.num_workers,
                                                     staged ? std::optional<Device>(place_.device) : std::nullopt));
  if (leader_) {
    TESSERA_ASSIGN_OR_RETURN(metrics_, MetricsWriter::Open(config_.metrics_out));
  }
  steps_per_epoch_ =
      StepsPerEpoch(config_.batch_size, workload_->total_examples(), place_.num_workers);
  planned_steps_ = PlannedSteps(config_, workload_->total_examples(), place_.num_workers);
  auto it = data::IndexBatches::Create(workload_->local_examples(), BatchOptions());
  if (!it.ok()) return it.status().WithContext("worker " + std::to_string(place_.worker_index));
  batches_.emplace(std::move(it).value());
  const ResumePoint resume = place_.client->resume();
  TESSERA_RETURN_IF_ERROR(ResumeAt(resume, [this](const data::DataCursor& c) { return batches_->Seek(c); }));

  std::vector<ParamSpec> specs = workload_->SparseParams();
  const size_t num_tables = specs.size();
  std::vector<model::Parameter*> dense = workload_->DenseParameters();
  if (staged && workload_->dense_on_device()) {
    // The loop (pulls, pushes, all-reduce, checkpoints, digest) works on host mirrors.
    dense_model_ = dense;
    TESSERA_ASSIGN_OR_RETURN(dense_staging_, DeviceStaging::Create(place_.device, dense, nullptr));
    dense = dense_staging_->mirrors();
  }
  for (model::Parameter* p : dense) specs.push_back(p->spec);
  TESSERA_RETURN_IF_ERROR_CTX(place_.client->DeclareParams(specs),
                              "declaring the model's parameters");
  std::vector<uint32_t> dense_ids;
  for (size_t i = 0; i < specs.size(); ++i) {
    TESSERA_ASSIGN_OR_RETURN(uint32_t id, place_.client->ParamId(specs[i].name));
    if (i < num_tables) {
      table_ids_.push_back(id);
      table_width_.push_back(specs[i].numel());
    } else {
      dense_ids.push_back(id);
    }
  }
  batch_[0].tables.resize(num_tables);
  batch_[1].tables.resize(num_tables);
  if (staged) {
    TESSERA_ASSIGN_OR_RETURN(row_staging_, RowStaging::Create(place_.device));
    workload_->set_row_staging(row_staging_.get());
    for (SparseBatch& b : batch_) {
      for (SparseRows& r : b.tables) r.pinned_for = place_.device;
    }
  }
  prefetch_early_ = collective::ServerSyncText(place_.sync) != "bsp";
  TESSERA_RETURN_IF_ERROR(
      DeclareDense(std::move(dense), std::move(dense_ids), "pulling the initial dense parameters"));
  TESSERA_RETURN_IF_ERROR(StartCheckpoints(resume));
  if (dense_staging_) {
    for (size_t i : all_dense_) {
      if (std::find(server_dense_.begin(), server_dense_.end(), i) == server_dense_.end()) reduced_dense_.push_back(i);
    }
    // The pulled values, or on resume the restored all-reduced ones.
    TESSERA_RETURN_IF_ERROR(DenseToDevice(all_dense_));
  }
  if (leader_) {
    int64_t dense_numel = 0;
    for (const model::Parameter* p : dense_) dense_numel += p->spec.numel();
    LOG(INFO) << "training " << config_.model << " (" << num_tables << " sparse tables, "
              << dense_numel << " dense parameters) for " << planned_steps_ << " steps ("
              << steps_per_epoch_ << " per epoch) of " << config_.batch_size << " x "
              << place_.num_workers << " workers, optimizer "
              << OptimizerKindName(config_.mlp.optimizer.kind) << " lr " << config_.mlp.optimizer.lr
              << ", sync " << place_.sync << ", on "
              << (place_.device == Device::kCUDA ? "CUDA" : "the CPU")
              << (!row_staging_ ? ""
                  : dense_staging_ ? " (staged embedding rows and MLP)"
                                   : " (staged embedding rows; dense part on the CPU)")
              << "; "
              << workload_->local_examples()
              << " local training examples";
    if (grad_sync_->mode() == collective::GradSyncMode::kHybrid && dense_.empty()) {
      LOG(INFO) << "--sync=hybrid: " << config_.model
                << " has no dense parameters, so every table goes through the servers (as with --sync=bsp)";
    }
    // On resume: the loss at the checkpoint's step.
    uint64_t unused;
    TESSERA_ASSIGN_OR_RETURN(EvalReport r, Evaluate(next_step_, &unused));
    summary_.initial_eval_loss = r.heldout_loss >= 0 ? r.heldout_loss : r.logloss;
  }
  return Status::OK();
}

void SparseTrainer::IssueSparsePulls(SparseBatch* batch, int64_t step,
                                     std::vector<Handle>* handles) {
  for (size_t t = 0; t < table_ids_.size(); ++t) {
    SparseRows& rows = batch->tables[t];
    if (rows.keys.empty()) continue;
    handles->push_back(
        place_.client->PullSparse(table_ids_[t], rows.keys, rows.values.view(), step));
  }
}

Status SparseTrainer::PullFor(SparseBatch* batch, int64_t step, const char* what) {
  std::vector<Handle> pulls;
  IssueSparsePulls(batch, step, &pulls);
  IssueDensePulls(step, server_dense_, &pulls);
  return WaitAll(&pulls, what);
}

Status SparseTrainer::PrepareBatch(int64_t step) {
  PhaseTimer timer(&summary_.phases.data_s, "data");
  SparseBatch& b = batch_[step & 1];
  b.slot = static_cast<int>(step & 1);
  batch_cursor_[step & 1] = batches_->cursor();
  const int64_t epoch = batches_->cursor().epoch;
  auto examples = batches_->Next();
  prepared_ = step;
  return workload_->Prepare(examples, epoch, &b);
}

Status SparseTrainer::RunStep(int64_t step) {
  PhaseTimes& t = summary_.phases;
  SparseBatch& batch = batch_[step & 1];
  const bool more = step + 1 < planned_steps_;
  std::vector<Handle>& next_pulls = pulls_[(step + 1) & 1];
  {
    // bsp/ssp: answered once the step clock allows, so also the wait for the slowest worker.
    PhaseTimer timer(&t.pull_s, "pull", "comm");
    TESSERA_RETURN_IF_ERROR_CTX(WaitAll(&pulls_[step & 1], "pulling rows"),
                                "step " + std::to_string(step));
  }
  // The dense values pulled with the rows (issued by the previous step, or Setup).
  if (dense_staging_) TESSERA_RETURN_IF_ERROR_CTX(DenseToDevice(server_dense_), "step " + std::to_string(step));
  if (more && prefetch_early_) {
    TESSERA_RETURN_IF_ERROR(PrepareBatch(step + 1));
    PhaseTimer timer(&t.issue_s, "issue", "comm");
    IssueSparsePulls(&batch_[(step + 1) & 1], step + 1, &next_pulls);
  }
  double loss;
  if (row_staging_) TESSERA_RETURN_IF_ERROR_CTX(row_staging_->LoadRows(batch), "step " + std::to_string(step));
  {
    // The workloads run forward and backward in one call.
    PhaseTimer timer(&t.compute_s, "forward_backward", "compute");
    TESSERA_ASSIGN_OR_RETURN(loss, workload_->Step(&batch));
  }
  if (dense_staging_) {
    // The dense gradients device -> their mirrors, which the loop pushes or all-reduces.
    for (model::Parameter* p : dense_model_) TESSERA_RETURN_IF_ERROR(dense_staging_->OnModelGradReady(p));
    TESSERA_RETURN_IF_ERROR_CTX(dense_staging_->FinishGrads(), "step " + std::to_string(step));
  }
  // --sync=hybrid: start the dense all-reduce now (the workloads have no gradient-ready
  // hook), so that it runs while the tables' rows travel to and from the servers.
  for (model::Parameter* p : dense_) grad_sync_->OnGradReady(p);
  std::vector<Handle> pushes;
  {
    PhaseTimer timer(&t.issue_s, "issue", "comm");
    for (size_t i = 0; i < table_ids_.size(); ++i) {
      const SparseRows& rows = batch.tables[i];
      pushes.push_back(
          place_.client->PushSparse(table_ids_[i], rows.keys, rows.grads.view(), step));
    }
    IssueDensePushes(step, &pushes);
  }
  if (more) {
    if (!prefetch_early_) {
      TESSERA_RETURN_IF_ERROR(PrepareBatch(step + 1));
      PhaseTimer timer(&t.issue_s, "issue", "comm");
      IssueSparsePulls(&batch_[(step + 1) & 1], step + 1, &next_pulls);
    }
    PhaseTimer timer(&t.issue_s, "issue", "comm");
    IssueDensePulls(step + 1, server_dense_, &next_pulls);
  }
  {
    // All-reduced dense parameters: wait, and apply the update to this worker's copy.
    PhaseTimer timer(&t.push_s, "push", "comm");
    Status st = FinishAllReduce();
    Status pushed = WaitAll(&pushes, "pushing gradients");
    if (st.ok()) st = pushed;
    // The mirrors the local optimizer just updated, to the device for the next step.
    if (st.ok() && dense_staging_) st = DenseToDevice(reduced_dense_);
    TESSERA_RETURN_IF_ERROR_CTX(st, "step " + std::to_string(step));
  }
  EndStep(step, loss, batch.examples);
  return Status::OK();
}

Result<EvalReport> SparseTrainer::Evaluate(int64_t step, uint64_t* digest) {
  SparseBatch eb;
  eb.tables.resize(table_ids_.size());
  uint64_t h = 0xcbf29ce484222325ULL;
  // Dense values are those of the last pull; pull them for `step` with the first batch.
  for (int64_t i = 0; i < workload_->NumEvalBatches(); ++i) {
    TESSERA_RETURN_IF_ERROR(workload_->PrepareEval(i, &eb));
    if (i == 0) {
      TESSERA_RETURN_IF_ERROR(PullFor(&eb, step, "pulling rows for evaluation"));
      if (dense_staging_) TESSERA_RETURN_IF_ERROR(DenseToDevice(server_dense_));
      for (const model::Parameter* p : dense_) h = Fnv1a64(p->value.data(), p->value.nbytes(), h);
    } else {
      std::vector<Handle> pulls;
      for (size_t t = 0; t < table_ids_.size(); ++t) {
        if (eb.tables[t].keys.empty()) continue;
        pulls.push_back(place_.client->PullSparse(table_ids_[t], eb.tables[t].keys,
                                                  eb.tables[t].values.view(), step));
      }
      TESSERA_RETURN_IF_ERROR(WaitAll(&pulls, "pulling rows for evaluation"));
    }
    for (const SparseRows& r : eb.tables) {
      h = Fnv1a64(r.keys.data(), r.keys.size() * sizeof(Key), h);
      h = Fnv1a64(r.values.data(), r.values.nbytes(), h);
    }
    TESSERA_RETURN_IF_ERROR(workload_->Eval(i, eb));
  }
  *digest = h;
  EvalReport r = workload_->FinishEval();
  char line[200];
  if (r.heldout_loss >= 0) {
    std::snprintf(line, sizeof(line), "eval after %lld steps: held-out loss %.4f (%lld pairs)",
                  static_cast<long long>(step), r.heldout_loss, static_cast<long long>(r.examples));
  } else {
    std::snprintf(
        line, sizeof(line),
        "eval after %lld steps: test AUC %.4f, log-loss %.4f, accuracy %.4f (%lld examples)",
        static_cast<long long>(step), r.test_auc, r.logloss, r.accuracy,
        static_cast<long long>(r.examples));
  }
  LOG(INFO) << line;
  metrics_->Eval(step, r.accuracy >= 0 ? r.accuracy : 0.0,
                 r.heldout_loss >= 0 ? r.heldout_loss : r.logloss, r.examples);
  return r;
}

Status SparseTrainer::FinishAfterBarrier() {
  if (server_dense_.size() < dense_.size()) {
    // All-reduced dense parameters live on the workers: every copy must be the same.
    std::vector<const Tensor*> values;
    for (const model::Parameter* p : dense_) values.push_back(&p->value);
    LOG(INFO) << "worker " << place_.worker_index << ": dense parameters digest " << DigestHex(ParamsDigest(values))
              << " (all-reduced, " << grad_sync_->bytes_allreduced() << " bytes)";
  }
  if (!leader_) return Status::OK();
  timeline::Span span("final eval", "worker");
  TESSERA_ASSIGN_OR_RETURN(EvalReport r, Evaluate(planned_steps_, &summary_.params_digest));
  if (!table_ids_.empty()) {
    // Every resident row of every table with its optimizer slots and counter, summed
    // over the servers. Rows only: the dense optimizer state lives on the servers under
    // bsp and on the workers under hybrid, and the two modes must keep one digest
    // (SparseHybridJob); the dense values are in the chain above.
    uint64_t store = 0;
    std::vector<Handle> digest{place_.client->PullStoreDigest(table_ids_[0], planned_steps_, true, &store)};
    TESSERA_RETURN_IF_ERROR(WaitAll(&digest, "reading the servers' store digests"));
    LOG(INFO) << "servers' store digest " << DigestHex(store);
    summary_.params_digest = HashCombine(summary_.params_digest, store);
  }
  for (const std::string& line : r.lines) LOG(INFO) << line;
  summary_.test_auc = r.test_auc;
  summary_.logloss = r.logloss;
  summary_.heldout_loss = r.heldout_loss;
  summary_.test_examples = r.examples;
  if (r.accuracy >= 0) summary_.test_accuracy = r.accuracy;
  summary_.test_loss = r.heldout_loss >= 0 ? r.heldout_loss : r.logloss;
  return Status::OK();
}

Status SparseTrainer::DenseToDevice(const std::vector<size_t>& which) {
  for (size_t i : which) TESSERA_RETURN_IF_ERROR(dense_staging_->ValueToDevice(i));
  return dense_staging_->WaitValues();
}

Status SparseTrainer::BeforeSteps() {
  TESSERA_RETURN_IF_ERROR(PrepareBatch(next_step_));
  IssueSparsePulls(&batch_[next_step_ & 1], next_step_, &pulls_[next_step_ & 1]);
  return Status::OK();
}

void SparseTrainer::AbandonSteps() {
  for (auto& p : pulls_) (void)WaitAll(&p, "");
}

void SparseTrainer::CompleteSummary() {
  const ClientStats& cs = place_.client->stats();
  summary_.keys_pushed = cs.keys_pushed.load();
  summary_.keys_pulled = cs.keys_pulled.load();
}

std::string SparseTrainer::PhaseLine() const {
  const PhaseTimes& p = summary_.phases;
  char line[320];
  std::snprintf(line, sizeof(line),
                "worker %d: %lld steps in %.2f s: data %.2f s, pull wait %.2f s, compute %.2f s, "
                "issue %.2f s, "
                "push wait %.2f s, report %.2f s; %llu keys pushed, %llu pulled",
                place_.worker_index, static_cast<long long>(planned_steps_), summary_.train_s,
                p.data_s, p.pull_s, p.compute_s, p.issue_s, p.push_s, p.report_s,
                static_cast<unsigned long long>(summary_.keys_pushed),
                static_cast<unsigned long long>(summary_.keys_pulled));
  return line;
}

}  // namespace tessera::worker::sparse
