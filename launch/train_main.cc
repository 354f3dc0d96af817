#include "launch/train_main.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "collective/compression.h"
#include "collective/sync_mode.h"
#include "common/exit_codes.h"
#include "common/logging.h"
#include "launch/checkpoint_flags.h"
#include "launch/flag_value.h"
#include "launch/job.h"
#include "kernels/device_select.h"
#include "worker/device_comm.h"
#include "worker/sparse/sparse_trainer.h"
#include "worker/trainer.h"

// Flags of `tessera train` (docs/training.md). The job flags (--servers, --workers,
// --sync, --grad_reduce, --chunk_bytes, --request_timeout_s, ...) live in launch/job.cc.
DEFINE_string(model, "mlp", "Model to train: mlp, logreg, widedeep, word2vec or dlrm");
DEFINE_string(data, "data/mnist", "Directory with the MNIST IDX files (relative to the working directory)");
DEFINE_string(hidden, "256,128", "MLP hidden layer widths, input side first (\"\" = softmax regression)");
DEFINE_string(activation, "relu", "Hidden activation: relu, gelu or none");
DEFINE_int64(batch_size, 64, "Examples per step on each worker");
DEFINE_int64(epochs, 1, "Passes over the smallest worker partition (ignored when --steps > 0)");
DEFINE_int64(steps, 0, "Steps every worker runs; > 0 overrides --epochs");
DEFINE_string(optimizer, "sgd", "Server-side optimizer: sgd, momentum, adagrad, adam or adamw");
DEFINE_double(lr, 0.01, "Learning rate");
DEFINE_double(momentum, 0.9, "Momentum coefficient (--optimizer=momentum)");
DEFINE_double(weight_decay, 0.0, "Weight decay (L2 for sgd/momentum/adagrad/adam, decoupled for adamw)");
DEFINE_double(clip_norm, 0.0, "Clip each gradient chunk to this L2 norm on the servers (0 = off)");
DEFINE_uint64(seed, 0, "Seed of the parameter initialisers and the data shuffle");
DEFINE_bool(shuffle, true, "Reshuffle each worker's partition every epoch");
DEFINE_bool(deterministic, false,
            "Bitwise-reproducible run: requires --sync=bsp, allreduce or hybrid and forces --blas_threads=1");
DEFINE_int32(blas_threads, 1, "OpenBLAS threads per worker (0 = the library's default, one per core)");
DEFINE_int64(log_every, 50, "Progress line on stderr every N steps (worker 0; 0 = only the last step)");
DEFINE_int64(eval_every, 0, "Evaluate on the test split every N steps (worker 0; 0 = only at the end)");
DEFINE_int64(eval_batch_size, 1000, "Rows per forward pass during evaluation");
DEFINE_int64(train_limit, 0, "Use only the first N training examples (0 = all)");
DEFINE_int64(test_limit, 0, "Evaluate on only the first N test examples (0 = all)");
DEFINE_string(metrics_out, "", "Worker 0 writes JSON-lines metrics (step, eval, summary) to this file");
DEFINE_double(bucket_mb, 25, "--sync=allreduce|hybrid: gradient fusion buffer in MiB (0 = one all-reduce per tensor)");
DEFINE_string(compress, "none",
              "Gradients on the wire: none, fp16 or bf16 (--sync=allreduce|hybrid), or topk:R (0 < R <= 1, any --sync: "
              "the top R of each dense gradient plus its residual)");
// Sparse models (worker/sparse/sparse_config.h, docs/training.md).
DEFINE_int32(cross_order, 2, "logreg/widedeep: hash every set of up to N active features (1, 2 or 3)");
DEFINE_int32(hash_bits, 24, "logreg/widedeep: hashed keys live in [0, 2^hash_bits)");
DEFINE_int64(embed_dim, 16, "widedeep: embedding width per feature; word2vec: vector width; dlrm: embedding and bottom MLP output width");
DEFINE_string(bottom_mlp, "64", "dlrm: hidden widths of the bottom MLP over the dense features (its embed_dim-wide output is added)");
DEFINE_int32(window, 5, "word2vec: maximum distance between center and context word");
DEFINE_int32(negatives, 5, "word2vec: noise words per (center, context) pair");
DEFINE_int64(min_count, 5, "word2vec: drop words rarer than this from the vocabulary");
DEFINE_double(subsample, 1e-4, "word2vec: frequency-subsampling threshold (0 = off)");
DEFINE_double(heldout_fraction, 0.02, "word2vec: tail fraction of the corpus held out for the held-out loss");
DEFINE_int64(heldout_pairs, 20000, "word2vec: score at most this many held-out pairs");
DEFINE_string(neighbours, "", "word2vec: comma-separated words whose nearest neighbours worker 0 logs at the end");
DEFINE_string(embeddings_out, "", "word2vec: worker 0 writes the final word vectors here as text");
DEFINE_bool(staging_on_cpu, false,
            "Test hook: run the GPU path's staging (the model's own parameter copies, per-layer gradient copies, "
            "pinned buffers; for the sparse models, the embedding rows' gather and scatter-add) on the CPU; results "
            "are bitwise those of the plain CPU path");
DECLARE_double(request_timeout_s);
DECLARE_string(device);
DECLARE_uint64(chunk_bytes);

// OpenBLAS's thread control. Weak, so a build against another BLAS still links (and the
// flag then does nothing). Calling the API is how Tessera configures OpenBLAS:
// environment variables are read only in launch/env.cc.
extern "C" void openblas_set_num_threads(int num_threads) __attribute__((weak));

namespace tessera {

namespace {

// gflags exits with code 1 on an unknown flag; Tessera's contract for bad flags is
// kExitConfig. So names are checked first, on the command line and in --flagfile files.
// Checks one "--name[=value]" argument. Sets *takes_next when the flag's value is the
// next argument ("--lr 0.1": a non-bool flag without '=').
Status CheckFlagName(const std::string& arg, const std::string& where, bool* takes_next) {
  *takes_next = false;
  if (arg.size() < 2 || arg[0] != '-') return Status::OK();
  std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
  const bool has_value = name.find('=') != std::string::npos;
  name = name.substr(0, name.find('='));
  if (name.empty()) return Status::OK();
  gflags::CommandLineFlagInfo info;
  if (gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
    *takes_next = !has_value && info.type != "bool";
    return Status::OK();
  }
  if (name.rfind("no", 0) == 0 && gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &info) &&
      info.type == "bool") {
    return Status::OK();
  }
  return Status::InvalidArgument("unknown flag --" + name + where + " (see `tessera train --help`)");
}

Status CheckFlagNames(int argc, char** argv) {
  bool takes_next = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") break;
    if (takes_next) {  // the value of the previous flag, even when it starts with '-'
      takes_next = false;
      continue;
    }
    TESSERA_RETURN_IF_ERROR(CheckFlagName(a, "", &takes_next));
    std::string file;
    if (a.rfind("--flagfile=", 0) == 0) file = a.substr(11);
    else if (a.rfind("-flagfile=", 0) == 0) file = a.substr(10);
    else if ((a == "--flagfile" || a == "-flagfile") && i + 1 < argc) file = argv[i + 1];
    if (file.empty()) continue;
    std::ifstream in(file);
    if (!in) return Status::InvalidArgument("--flagfile=" + file + ": cannot read the file");
    std::string line;
    while (std::getline(in, line)) {
      const size_t b = line.find_first_not_of(" \t");
      if (b == std::string::npos || line[b] != '-') continue;  // blank, comment, or a filename line
      const size_t e = line.find_last_not_of(" \t\r");
      bool unused;
      TESSERA_RETURN_IF_ERROR(CheckFlagName(line.substr(b, e - b + 1), " in " + file, &unused));
    }
  }
  return Status::OK();
}

Result<worker::TrainConfig> ConfigFromFlags() {
  worker::TrainConfig c;
  c.model = FLAGS_model;
  c.data_dir = FLAGS_data;
  TESSERA_ASSIGN_OR_RETURN(c.mlp.hidden_sizes, launch::FlagValue(model::ParseHiddenSizes(FLAGS_hidden), "--hidden"));
  TESSERA_ASSIGN_OR_RETURN(c.mlp.activation,
                           launch::FlagValue(model::ParseActivation(FLAGS_activation), "--activation"));
  TESSERA_ASSIGN_OR_RETURN(c.mlp.optimizer.kind,
                           launch::FlagValue(worker::ParseOptimizerKind(FLAGS_optimizer), "--optimizer"));
  c.mlp.optimizer.lr = static_cast<float>(FLAGS_lr);
  c.mlp.optimizer.momentum = static_cast<float>(FLAGS_momentum);
  c.mlp.optimizer.weight_decay = static_cast<float>(FLAGS_weight_decay);
  c.mlp.optimizer.clip_norm = static_cast<float>(FLAGS_clip_norm);
  c.batch_size = FLAGS_batch_size;
  c.epochs = FLAGS_epochs;
  c.steps = FLAGS_steps;
  c.seed = FLAGS_seed;
  c.mlp.seed = FLAGS_seed;
  c.shuffle = FLAGS_shuffle;
  c.log_every = FLAGS_log_every;
  c.eval_every = FLAGS_eval_every;
  c.eval_batch_size = FLAGS_eval_batch_size;
  c.train_limit = FLAGS_train_limit;
  c.test_limit = FLAGS_test_limit;
  c.metrics_out = FLAGS_metrics_out;
  c.request_timeout_s = FLAGS_request_timeout_s;
  c.sparse.cross_order = FLAGS_cross_order;
  c.sparse.hash_bits = FLAGS_hash_bits;
  c.sparse.embed_dim = FLAGS_embed_dim;
  TESSERA_ASSIGN_OR_RETURN(c.sparse.bottom_mlp,
                           launch::FlagValue(model::ParseHiddenSizes(FLAGS_bottom_mlp), "--bottom_mlp"));
  c.sparse.window = FLAGS_window;
  c.sparse.negatives = FLAGS_negatives;
  c.sparse.min_count = FLAGS_min_count;
  c.sparse.subsample = FLAGS_subsample;
  c.sparse.heldout_fraction = FLAGS_heldout_fraction;
  c.sparse.heldout_pairs = FLAGS_heldout_pairs;
  c.sparse.neighbours = FLAGS_neighbours;
  c.sparse.embeddings_out = FLAGS_embeddings_out;
  TESSERA_RETURN_IF_ERROR(worker::ValidateTrainConfig(c));
  // Every process refuses at start (exit 2), before a job is formed.
  if (worker::IsSparseModel(c.model)) TESSERA_RETURN_IF_ERROR(worker::sparse::CheckSparseSync(c, launch::SyncFlag()));
  if (FLAGS_blas_threads < 0) {
    return Status::InvalidArgument("--blas_threads=" + std::to_string(FLAGS_blas_threads) + ": must be >= 0");
  }
  if (FLAGS_deterministic && launch::SyncFlag() != "bsp" && !collective::IsCollectiveSync(launch::SyncFlag())) {
    return Status::InvalidArgument("--deterministic needs --sync=bsp, allreduce or hybrid (got --sync=" +
                                   launch::SyncFlag() + "): ssp and asp results depend on message arrival order");
  }
  return c;
}

Result<worker::GradSyncOptions> GradSyncOptionsFromFlags() {
  worker::GradSyncOptions o;
  o.sync = launch::SyncFlag();
  o.bucket_mb = FLAGS_bucket_mb;
  TESSERA_ASSIGN_OR_RETURN(o.compress, collective::ParseCompression(FLAGS_compress));
  o.chunk_bytes = FLAGS_chunk_bytes;
  o.timeout = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(FLAGS_request_timeout_s));
  TESSERA_RETURN_IF_ERROR(worker::ValidateGradSyncOptions(o));
  return o;
}

void ConfigureBlasThreads() {
  int threads = FLAGS_deterministic ? 1 : FLAGS_blas_threads;
  if (threads > 0 && openblas_set_num_threads != nullptr) openblas_set_num_threads(threads);
}

}  // namespace

int TrainMain(int argc, char** argv) {
  Status names = CheckFlagNames(argc, argv);
  if (!names.ok()) {
    std::fprintf(stderr, "tessera train: %s\n", names.message().c_str());
    return kExitConfig;
  }
  InitProcess(&argc, &argv,
              "tessera train: train a model on parameter servers.\n"
              "  tessera launch --servers 2 --workers 2 --flagfile examples/mnist_mlp.flags\n"
              "Flags: docs/training.md");
  auto config = ConfigFromFlags();
  if (!config.ok()) {
    std::fprintf(stderr, "tessera train: %s\n", config.status().message().c_str());
    return kExitConfig;
  }
  auto grad_sync = GradSyncOptionsFromFlags();
  if (!grad_sync.ok()) {
    std::fprintf(stderr, "tessera train: %s\n", grad_sync.status().message().c_str());
    return kExitConfig;
  }
  ConfigureBlasThreads();
  return launch::RunJobProcess([&config, &grad_sync](launch::WorkerContext& wc) -> Status {
    worker::TrainerPlace place;
    place.client = wc.client;
    place.worker_index = wc.worker_index;
    place.num_workers = wc.num_workers;
    place.num_servers = wc.num_servers;
    place.sync = launch::SyncFlag();
    place.comm = wc.comm;
    place.grad_sync = *grad_sync;
    TESSERA_ASSIGN_OR_RETURN(place.checkpoint_write, launch::CheckpointWriteMethodFromFlags());
    place.device = wc.device;
    place.staging_on_cpu = FLAGS_staging_on_cpu;
    // Declared before the trainer, so it outlives it.
    std::unique_ptr<collective::Communicator> nccl;
    if (wc.device == Device::kCUDA && collective::IsCollectiveSync(place.sync) && wc.num_workers > 1 &&
        !worker::IsSparseModel(config->model)) {
      const int gpu = kernels::SelectedCudaDevice();
      if (wc.comm == nullptr) return Status::FailedPrecondition("--sync=" + place.sync + " with several workers needs their MPI communicator");
      TESSERA_ASSIGN_OR_RETURN(const bool distinct,
                               worker::WorkersHaveDistinctGpus(*wc.comm, gpu, place.grad_sync.timeout));
      if (distinct) {
        TESSERA_ASSIGN_OR_RETURN(nccl, worker::ConnectNccl(*wc.client, wc.worker_index, wc.num_workers, gpu,
                                                           place.grad_sync.timeout));
        place.device_comm = nccl.get();
        if (wc.worker_index == 0) LOG(INFO) << "gradients are all-reduced by NCCL on the workers' GPUs";
      } else if (wc.worker_index == 0) {
        LOG(WARNING) << "some workers share a GPU, and NCCL needs one GPU per rank: gradients are all-reduced "
                        "over MPI from host memory (staged through pinned buffers)";
      }
    }
    worker::TrainSummary summary;
    if (worker::IsSparseModel(config->model)) {
      TESSERA_ASSIGN_OR_RETURN(auto sparse_trainer, worker::sparse::SparseTrainer::Create(*config, place));
      TESSERA_ASSIGN_OR_RETURN(summary, sparse_trainer->Run());
    } else {
      TESSERA_ASSIGN_OR_RETURN(auto trainer, worker::Trainer::Create(*config, place));
      TESSERA_ASSIGN_OR_RETURN(summary, trainer->Run());
    }
    if (wc.worker_index == 0) {
      std::printf("summary: %s\n", worker::SummaryJson(summary).c_str());
      std::fflush(stdout);
    }
    return Status::OK();
  });
}

}  // namespace tessera
