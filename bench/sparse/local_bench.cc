// sparse_local_bench: the baseline of bench/sparse/run.sh. One process, no network: the
// same workload code (worker/sparse: batches, dedup, forward/backward) and the same
// server-side storage and optimizer (paramserver::ShardStore: ReadSparse, ApplySparse,
// ApplyDense) that a `tessera launch` job runs, called directly, one step after another.
// So the difference to the job's throughput is what the parameter-server path costs
// (messages, copies, the bsp round trips, the other processes sharing the cores).
//
//   sparse_local_bench --model=word2vec --data=data/text8-head --train_limit=100000 ...
// prints one line: RESULT model=... samples=... seconds=... samples_per_s=... keys_per_s=...
#include <gflags/gflags.h>

#include <chrono>
#include <cstdio>

#include "common/cluster/shard_map.h"
#include "kernels/optimizer_step.h"
#include "paramserver/shard_store.h"
#include "worker/data/index_batches.h"
#include "kernels/param_init.h"
#include "worker/sparse/sparse_trainer.h"

DEFINE_string(model, "word2vec", "word2vec, widedeep or logreg");
DEFINE_string(data, "data/text8-head", "as `tessera train --data`");
DEFINE_int64(train_limit, 100000, "as `tessera train --train_limit`");
DEFINE_int64(embed_dim, 100, "as `tessera train --embed_dim`");
DEFINE_int64(batch_size, 256, "examples per step");
DEFINE_int64(epochs, 1, "passes over the data");
DEFINE_double(lr, 0.2, "AdaGrad learning rate");
DEFINE_string(hidden, "64,32", "widedeep MLP");
DEFINE_string(
    store, "shardstore",
    "shardstore: rows in paramserver::ShardStore (the servers' code); arrays (word2vec only): "
    "each table a dense [V, D] array with its AdaGrad slots, no hashing, no per-row allocation");

namespace tessera {
namespace {

int Main() {
  worker::TrainConfig c;
  c.model = FLAGS_model;
  c.data_dir = FLAGS_data;
  c.train_limit = FLAGS_train_limit;
  c.sparse.embed_dim = FLAGS_embed_dim;
  c.batch_size = FLAGS_batch_size;
  c.mlp.optimizer.kind = OptimizerKind::kAdaGrad;
  c.mlp.optimizer.lr = static_cast<float>(FLAGS_lr);
  c.mlp.hidden_sizes = *model::ParseHiddenSizes(FLAGS_hidden);
  c.seed = 1;
  auto w = worker::sparse::CreateWorkload(c, 0, 1);
  if (!w.ok()) {
    std::fprintf(stderr, "%s\n", w.status().ToString().c_str());
    return 1;
  }
  std::vector<ParamSpec> specs = (*w)->SparseParams();
  const size_t tables = specs.size();
  auto dense = (*w)->DenseParameters();
  for (auto* p : dense) specs.push_back(p->spec);
  ShardMapOptions mo;
  mo.grad_reduce = GradReduce::kSum;
  auto map = ShardMap::Build(mo, {{1, "inproc://local"}}, specs);
  if (!map.ok()) return 1;
  auto store = paramserver::ShardStore::Create(*map, 0);
  if (!store.ok()) return 1;
  data::BatchIteratorOptions bo;
  bo.batch_size = FLAGS_batch_size;
  bo.seed = 1;
  auto it = data::IndexBatches::Create((*w)->local_examples(), bo);
  const int64_t steps = FLAGS_epochs * it->batches_per_epoch();
  worker::sparse::SparseBatch b;
  b.tables.resize(tables);
  // --store=arrays: rows by key index in flat arrays (keys are word ids < V).
  const bool arrays = FLAGS_store == "arrays";
  int64_t vocab = 0;
  std::vector<std::vector<float>> values(tables), slots(tables);
  std::vector<int64_t> widths(tables);
  if (arrays) {
    if (FLAGS_model != "word2vec") {
      std::fprintf(stderr, "--store=arrays needs --model=word2vec\n");
      return 1;
    }
    // Every word id occurs as a key: the vocabulary is at most the number of rows the
    // whole evaluation pulls, which is the workload's vocabulary.
    worker::sparse::SparseBatch probe;
    probe.tables.resize(tables);
    (void)(*w)->PrepareEval((*w)->NumEvalBatches() - 1, &probe);
    vocab = static_cast<int64_t>(probe.tables[0].keys.size());
    for (size_t t = 0; t < tables; ++t) {
      widths[t] = specs[t].numel();
      values[t].resize(static_cast<size_t>(vocab * widths[t]));
      slots[t].resize(static_cast<size_t>(vocab * widths[t]));
      for (int64_t k = 0; k < vocab; ++k) {
        (void)InitializeSparseRow(
            specs[t], static_cast<Key>(k),
            {values[t].data() + k * widths[t], DType::kF32, {widths[t]}, Device::kCPU});
      }
      (void)kernels::InitSlots(specs[t].optimizer, slots[t], values[t].size());
    }
  }
  int64_t samples = 0, keys = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t epoch = it->cursor().epoch;
    Status st = (*w)->Prepare(it->Next(), epoch, &b);
    for (size_t t = 0; st.ok() && t < tables; ++t) {
      auto& r = b.tables[t];
      if (arrays) {
        for (size_t k = 0; k < r.keys.size(); ++k) {
          std::copy_n(values[t].data() + r.keys[k] * widths[t], widths[t],
                      r.values.as<float>() + k * widths[t]);
        }
      } else {
        st = store->ReadSparse(static_cast<uint32_t>(t), r.keys,
                               {r.values.as<float>(), static_cast<size_t>(r.values.numel())});
      }
    }
    for (size_t i = 0; st.ok() && i < dense.size(); ++i) {
      st = store->ReadDense(
          static_cast<uint32_t>(tables + i), 0, dense[i]->value.numel(),
          {dense[i]->value.as<float>(), static_cast<size_t>(dense[i]->value.numel())});
    }
    if (st.ok()) st = (*w)->Step(&b).status();
    for (size_t t = 0; st.ok() && t < tables; ++t) {
      auto& r = b.tables[t];
      const int64_t width =
          r.grads.numel() / std::max<int64_t>(1, static_cast<int64_t>(r.keys.size()));
      for (size_t k = 0; st.ok() && k < r.keys.size(); ++k) {
        std::span<float> g{r.grads.as<float>() + k * width, static_cast<size_t>(width)};
        if (arrays) {
          const size_t off = static_cast<size_t>(r.keys[k] * width);
          st = kernels::ApplyUpdate(specs[t].optimizer, 1, {values[t].data() + off, g.size()},
                                        {slots[t].data() + off, g.size()}, g);
        } else {
          st = store->ApplySparse(static_cast<uint32_t>(t), r.keys[k], g);
        }
      }
      keys += static_cast<int64_t>(r.keys.size());
    }
    for (size_t i = 0; st.ok() && i < dense.size(); ++i) {
      st = store->ApplyDense(
          static_cast<uint32_t>(tables + i), 0,
          {dense[i]->grad.as<float>(), static_cast<size_t>(dense[i]->grad.numel())});
    }
    if (!st.ok()) {
      std::fprintf(stderr, "step %lld: %s\n", static_cast<long long>(s), st.ToString().c_str());
      return 1;
    }
    samples += b.examples;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "RESULT store=%s model=%s samples=%lld steps=%lld seconds=%.3f samples_per_s=%.1f "
      "keys_per_s=%.1f\n",
      FLAGS_store.c_str(), FLAGS_model.c_str(), static_cast<long long>(samples),
      static_cast<long long>(steps), secs, static_cast<double>(samples) / secs,
      static_cast<double>(keys) / secs);
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return tessera::Main();
}
