// sparse_store_bench: the flat sparse row store of one server (paramserver/row_table.h
// under ShardStore), in one process, no network:
//
//   --bench_mode=memory  fills a table with --rows rows of --dim floats (SGD: no slots;
//                        --optimizer=adagrad: one slot) and prints bytes per resident row
//                        (the table's own count, and the process's RSS growth) against the
//                        ideal (key + values + slots + counter), and the same rows in a
//                        std::unordered_map<Key, RowState> as the old ShardStore held
//                        them (RSS growth), measured in the same run.
//   --bench_mode=stall   --rows resident rows, then a checkpoint's reactor stall: a full
//                        snapshot (every row copied, digest) against an incremental one
//                        after --dirty_percent of the rows were updated (dirty rows taken
//                        and copied, digest), what CheckpointParticipant::Snapshot does.
//
// Prints a markdown table row per measurement (docs/benchmarks-sparse.md).
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>

#include "common/cluster/shard_map.h"
#include "common/hash.h"
#include "paramserver/shard_store.h"

DEFINE_string(bench_mode, "memory", "memory | stall");
DEFINE_int64(rows, 10000000, "resident rows");
DEFINE_int32(dim, 16, "row width");
DEFINE_string(optimizer, "sgd", "sgd | adagrad | adam");
DEFINE_double(dirty_percent, 1.0, "stall: rows updated between the two checkpoints");
DEFINE_bool(old_layout, true, "memory: also measure the old std::unordered_map layout");

namespace tessera {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

uint64_t RssBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * 4096;
}

OptimizerKind Kind() {
  if (FLAGS_optimizer == "adagrad") return OptimizerKind::kAdaGrad;
  if (FLAGS_optimizer == "adam") return OptimizerKind::kAdam;
  return OptimizerKind::kSgd;
}

Result<ShardMap> Map() {
  ParamSpec p;
  p.name = "emb";
  p.kind = ParamKind::kSparse;
  p.shape = {FLAGS_dim};
  p.init = InitKind::kUniform;
  p.init_scale = 0.01f;
  p.optimizer.kind = Kind();
  p.optimizer.lr = 0.01f;
  ShardMapOptions o;
  return ShardMap::Build(o, {{1, "inproc://s"}}, {p});
}

// Pushes every key of [first, last) once, in batches of 4096 (a random order within the
// range, as a workload would touch them).
Status Touch(paramserver::ShardStore& store, uint64_t first, uint64_t last, uint64_t stride = 1) {
  const uint64_t w = static_cast<uint64_t>(FLAGS_dim);
  std::vector<Key> keys;
  std::vector<float> g;
  for (uint64_t k = first; k < last; k += stride) {
    keys.push_back(Mix64(k));  // scattered 64-bit ids
    if (keys.size() == 4096 || k + stride >= last) {
      std::sort(keys.begin(), keys.end());
      g.assign(keys.size() * w, 0.001f);
      TESSERA_RETURN_IF_ERROR(store.ApplySparseRows(0, keys, g));
      keys.clear();
    }
  }
  return Status::OK();
}

int Memory() {
  auto map = Map();
  if (!map.ok()) return std::fprintf(stderr, "%s\n", map.status().ToString().c_str()), 1;
  const uint64_t nslots = static_cast<uint64_t>(NumOptimizerSlots(Kind()));
  const double ideal = 8.0 + 8.0 + 4.0 * static_cast<double>(FLAGS_dim) * static_cast<double>(1 + nslots);
  const uint64_t rss0 = RssBytes();
  double rss_per_row = 0, table_per_row = 0, fill_s = 0;
  {
    auto store = paramserver::ShardStore::Create(*map, 0);
    if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
    const auto t = Clock::now();
    Status st = Touch(*store, 0, static_cast<uint64_t>(FLAGS_rows));
    fill_s = Since(t);
    if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    const double n = static_cast<double>(store->num_rows(0));
    rss_per_row = static_cast<double>(RssBytes() - rss0) / n;
    table_per_row = static_cast<double>(store->table(0)->MemoryBytes()) / n;
  }
  double old_per_row = 0;
  if (FLAGS_old_layout) {
    // The old ShardStore's layout: one node per row owning two vectors.
    const uint64_t rss1 = RssBytes();
    std::unordered_map<Key, paramserver::RowState> rows;
    for (int64_t k = 0; k < FLAGS_rows; ++k) {
      auto [it, inserted] = rows.try_emplace(Mix64(static_cast<uint64_t>(k)));
      it->second.key = it->first;
      it->second.values.assign(static_cast<size_t>(FLAGS_dim), 0.5f);
      it->second.slots.assign(static_cast<size_t>(FLAGS_dim) * nslots, 0.0f);
    }
    old_per_row = static_cast<double>(RssBytes() - rss1) / static_cast<double>(rows.size());
  }
  std::printf("| %lld | %d | %s | %.0f | %.1f (%.2fx) | %.1f (%.2fx) | %.1f (%.2fx) | %.2f s |\n",
              static_cast<long long>(FLAGS_rows), FLAGS_dim, FLAGS_optimizer.c_str(), ideal, table_per_row,
              table_per_row / ideal, rss_per_row, rss_per_row / ideal, old_per_row, old_per_row / ideal, fill_s);
  return 0;
}

int Stall() {
  auto map = Map();
  if (!map.ok()) return std::fprintf(stderr, "%s\n", map.status().ToString().c_str()), 1;
  auto store = paramserver::ShardStore::Create(*map, 0);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  const uint64_t n = static_cast<uint64_t>(FLAGS_rows);
  Status st = Touch(*store, 0, n);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  store->TrackDirtyRows(true);
  // The first full checkpoint pays for fresh memory; the participant reuses it later.
  paramserver::ShardSnapshot snap;
  store->SnapshotInto(&snap, false);
  std::vector<std::pair<uint32_t, Key>> taken;
  auto t = Clock::now();
  store->SnapshotDirtyInto(nullptr, &taken);
  store->SnapshotInto(&snap, false);
  uint64_t digest = store->Digest();
  const double full_s = Since(t);
  const uint64_t stride = static_cast<uint64_t>(100.0 / FLAGS_dirty_percent);
  // What CheckpointParticipant::Snapshot does for an incremental checkpoint (rows only:
  // this table has no dense part): twice, the first into fresh memory, the second into
  // the first one's (the participant reuses its previous incremental snapshot).
  paramserver::ShardSnapshot inc;
  double inc_s[2] = {0, 0};
  for (int round = 0; round < 2; ++round) {
    st = Touch(*store, static_cast<uint64_t>(round), n, stride);
    if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    t = Clock::now();
    store->SnapshotDirtyInto(&inc, &taken);
    digest ^= store->Digest();
    inc_s[round] = Since(t);
  }
  std::printf("| %llu | %d | %s | %zu (%.2f%%) | %.1f ms | %.2f ms | %.2f ms | %.0fx | %016llx |\n",
              static_cast<unsigned long long>(n), FLAGS_dim, FLAGS_optimizer.c_str(), inc.rows.size(),
              100.0 * static_cast<double>(inc.rows.size()) / static_cast<double>(n), full_s * 1e3, inc_s[0] * 1e3,
              inc_s[1] * 1e3, full_s / inc_s[1], static_cast<unsigned long long>(digest));
  return 0;
}

}  // namespace
}  // namespace tessera

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_rows <= 0 || FLAGS_dim <= 0 || FLAGS_dirty_percent <= 0 || FLAGS_dirty_percent > 100) {
    std::fprintf(stderr, "store_bench: --rows and --dim must be > 0, --dirty_percent in (0, 100]\n");
    return 2;
  }
  if (FLAGS_bench_mode == "memory") return tessera::Memory();
  if (FLAGS_bench_mode == "stall") return tessera::Stall();
  std::fprintf(stderr, "store_bench: unknown --bench_mode %s\n", FLAGS_bench_mode.c_str());
  return 2;
}
