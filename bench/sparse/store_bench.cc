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
//   --bench_mode=evict   a skewed stream (Zipf --zipf over --keys ids, 4096 draws per push,
//                        --steps pushes, each push one step) into a table limited to
//                        --rows rows (--table_memory_limit = rows * RowBytes): the hit
//                        rate (pushed keys that found their row resident) of the
//                        store's policy against a random-victim policy and a static
//                        oracle (the --rows most frequent ids resident) on the same
//                        stream, and push time with and without the limit, the pushes
//                        that evicted separately (the cost of an eviction round).
//
//   --bench_mode=ops     the reactor's per-key cost of a sparse pull (ReadSparse) and push
//                        (ApplySparseRows) of 4096 random keys (sorted, unique, as the wire
//                        delivers them) of a --rows-key table, --steps of each: cold (an
//                        empty table: nearly every key new) and steady (every key resident
//                        first). ns per key, the median of 5 passes of --steps / 5.
//                        --ops_phases picks the phases; with --settle_pages the steady
//                        phase waits for the background collapses of the filled table's
//                        slabs (paramserver/huge_pages.h) and prints the process's
//                        AnonHugePages, so it measures the rows on the pages a long-running
//                        server has.
//
// Prints a markdown table row per measurement (docs/benchmarks-sparse.md).
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "common/cluster/shard_map.h"
#include "common/hash.h"
#include "paramserver/huge_pages.h"
#include "paramserver/shard_store.h"

DEFINE_string(bench_mode, "memory", "memory | stall | evict");
DEFINE_int64(rows, 10000000, "resident rows");
DEFINE_int32(dim, 16, "row width");
DEFINE_string(optimizer, "sgd", "sgd | adagrad | adam");
DEFINE_double(dirty_percent, 1.0, "stall: rows updated between the two checkpoints");
DEFINE_bool(old_layout, true, "memory: also measure the old std::unordered_map layout");
DEFINE_int64(keys, 1000000, "evict: distinct ids of the stream");
DEFINE_double(zipf, 1.05, "evict: Zipf exponent of the stream");
DEFINE_int64(steps, 2000, "evict: pushes (one step each); ops: pulls and pushes per phase");
DEFINE_string(ops_phases, "cold,steady", "ops: which phases to run (cold, steady or both)");
DEFINE_bool(settle_pages, true, "ops: wait for the huge-page collapses before the steady phase");
DEFINE_bool(reuse_pull_slots, true, "ops: a push of the keys just pulled reuses the pull's slots (ShardStore::SetReusePullSlots)");

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

// The process's AnonHugePages line (/proc/self/smaps_rollup), or "" where there is none.
std::string AnonHugePages() {
  std::ifstream f("/proc/self/smaps_rollup");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("AnonHugePages:", 0) == 0) return line;
  }
  return "";
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
  // key + counter + values and slots (the slot's 4-byte last-seen step is overhead here).
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

// ns per key of `steps` pull+push rounds of 4096 random keys of [0, rows), medians of 5.
int OpsPhase(paramserver::ShardStore& store, const char* label, std::mt19937_64& rng) {
  const uint64_t w = static_cast<uint64_t>(FLAGS_dim);
  std::uniform_int_distribution<uint64_t> pick(0, static_cast<uint64_t>(FLAGS_rows) - 1);
  std::vector<Key> keys;
  std::vector<float> out(4096 * w), g(4096 * w);
  std::vector<double> pull_ns, push_ns;
  const int64_t per = std::max<int64_t>(1, FLAGS_steps / 5);
  store.SetReusePullSlots(FLAGS_reuse_pull_slots);
  for (int pass = 0; pass < 5; ++pass) {
    double pull_s = 0, push_s = 0;
    uint64_t n = 0;
    for (int64_t i = 0; i < per; ++i) {
      keys.clear();
      for (int j = 0; j < 4096; ++j) keys.push_back(Mix64(pick(rng)));
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      n += keys.size();
      auto t = Clock::now();
      Status st = store.ReadSparse(0, keys, std::span<float>(out.data(), keys.size() * w));
      pull_s += Since(t);
      g.assign(keys.size() * w, 0.001f);
      t = Clock::now();
      if (st.ok()) st = store.ApplySparseRows(0, keys, g);
      push_s += Since(t);
      if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    }
    pull_ns.push_back(pull_s * 1e9 / static_cast<double>(n));
    push_ns.push_back(push_s * 1e9 / static_cast<double>(n));
  }
  std::sort(pull_ns.begin(), pull_ns.end());
  std::sort(push_ns.begin(), push_ns.end());
  std::printf("| %s | %lld | %d | %s | %lld | %.0f | %.0f | %.0f | %.2f |\n", label, static_cast<long long>(FLAGS_rows),
              FLAGS_dim, FLAGS_optimizer.c_str(), static_cast<long long>(store.num_rows(0)), pull_ns[2], push_ns[2],
              pull_ns[2] + push_ns[2], 1e3 / (pull_ns[2] + push_ns[2]));
  return 0;
}

int Ops() {
  auto map = Map();
  if (!map.ok()) return std::fprintf(stderr, "%s\n", map.status().ToString().c_str()), 1;
  std::mt19937_64 rng(42);
  std::printf("| phase | table keys | D | optimizer | rows after | pull ns/key | push ns/key | pull+push ns/key | M keys/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  if (FLAGS_ops_phases.find("cold") != std::string::npos) {
    auto store = paramserver::ShardStore::Create(*map, 0);
    if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
    if (OpsPhase(*store, "cold", rng) != 0) return 1;
  }
  if (FLAGS_ops_phases.find("steady") == std::string::npos) return 0;
  auto store = paramserver::ShardStore::Create(*map, 0);
  if (!store.ok()) return std::fprintf(stderr, "%s\n", store.status().ToString().c_str()), 1;
  const auto t = Clock::now();
  Status st = Touch(*store, 0, static_cast<uint64_t>(FLAGS_rows));
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  std::fprintf(stderr, "filled %lld rows in %.2f s\n", static_cast<long long>(store->num_rows(0)), Since(t));
  if (FLAGS_settle_pages) {
    paramserver::WaitForHugePageCollapses();
    std::fprintf(stderr, "collapses done after %.2f s; %s\n", Since(t), AnonHugePages().c_str());
  }
  return OpsPhase(*store, "steady", rng);
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

// One push per step of the Zipf stream's distinct ids, into `store`; returns the hits
// (ids with a resident row before the push) and fills the timings.
struct EvictRun {
  uint64_t pushed = 0, hits = 0, evictions = 0;
  double total_s = 0, evicting_s = 0;
  uint64_t evicting_pushes = 0;
};

int Evict() {
  auto map = Map();
  if (!map.ok()) return std::fprintf(stderr, "%s\n", map.status().ToString().c_str()), 1;
  const uint64_t universe = static_cast<uint64_t>(FLAGS_keys), limit_rows = static_cast<uint64_t>(FLAGS_rows);
  std::vector<double> cdf(universe);
  double sum = 0;
  for (uint64_t r = 0; r < universe; ++r) cdf[r] = sum += 1.0 / std::pow(static_cast<double>(r + 1), FLAGS_zipf);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<std::vector<uint64_t>> stream(static_cast<size_t>(FLAGS_steps));  // ranks per push
  for (auto& batch : stream) {
    for (int i = 0; i < 4096; ++i) batch.push_back(static_cast<uint64_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin()));
    std::sort(batch.begin(), batch.end());
    batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
  }
  const uint64_t w = static_cast<uint64_t>(FLAGS_dim);
  auto run = [&](bool limited, EvictRun* out) -> Status {
    TESSERA_ASSIGN_OR_RETURN(auto store, paramserver::ShardStore::Create(*map, 0));
    paramserver::TablePolicy p;
    if (limited) p.memory_limit = limit_rows * store.table(0)->RowBytes();
    TESSERA_RETURN_IF_ERROR(store.SetTablePolicy(0, p));
    std::vector<Key> keys;
    std::vector<float> g;
    for (size_t step = 0; step < stream.size(); ++step) {
      keys.clear();
      for (uint64_t r : stream[step]) keys.push_back(Mix64(r));
      for (Key k : keys) out->hits += store.table(0)->Find(k) != paramserver::RowTable::kNoSlot ? 1 : 0;
      out->pushed += keys.size();
      g.assign(keys.size() * w, 0.001f);
      const uint64_t before = store.table_stats(0).evicted;
      const auto t = Clock::now();
      TESSERA_RETURN_IF_ERROR(store.ApplySparseRows(0, keys, g, static_cast<int64_t>(step)));
      const double s = Since(t);
      out->total_s += s;
      if (store.table_stats(0).evicted != before) {
        out->evicting_s += s;
        ++out->evicting_pushes;
      }
    }
    out->evictions = store.table_stats(0).evicted;
    return Status::OK();
  };
  EvictRun none, lru;
  Status st = run(false, &none);
  if (st.ok()) st = run(true, &lru);
  if (!st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
  // Random victims (the same trigger: over the limit, down to 90 %), on the same stream.
  uint64_t random_hits = 0, oracle_hits = 0;
  {
    std::unordered_set<uint64_t> resident;
    std::vector<uint64_t> list;
    std::unordered_map<uint64_t, size_t> pos;
    for (const auto& batch : stream) {
      for (uint64_t r : batch) {
        if (pos.count(r)) {
          ++random_hits;
          continue;
        }
        pos[r] = list.size();
        list.push_back(r);
      }
      if (list.size() > limit_rows) {
        const size_t keep = limit_rows / 10 * 9;
        while (list.size() > keep) {
          const size_t i = rng() % list.size();
          pos[list.back()] = i;
          pos.erase(list[i]);
          list[i] = list.back();
          list.pop_back();
        }
      }
    }
    for (const auto& batch : stream) {
      for (uint64_t r : batch) oracle_hits += r < limit_rows ? 1 : 0;  // ranks are by frequency
    }
  }
  const double n = static_cast<double>(lru.pushed);
  std::printf("| %llu | %llu | %.2f | %d | %llu | %.3f | %.3f | %.3f | %.3f | %.2f us | %.2f us (%.2fx) | %llu | %.2f ms |\n",
              static_cast<unsigned long long>(universe), static_cast<unsigned long long>(limit_rows), FLAGS_zipf,
              FLAGS_dim, static_cast<unsigned long long>(lru.evictions), static_cast<double>(none.hits) / n,
              static_cast<double>(lru.hits) / n, static_cast<double>(random_hits) / n,
              static_cast<double>(oracle_hits) / n, none.total_s / static_cast<double>(stream.size()) * 1e6,
              lru.total_s / static_cast<double>(stream.size()) * 1e6, lru.total_s / none.total_s,
              static_cast<unsigned long long>(lru.evicting_pushes),
              lru.evicting_pushes ? lru.evicting_s / static_cast<double>(lru.evicting_pushes) * 1e3 : 0.0);
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
  if (FLAGS_bench_mode == "ops") return tessera::Ops();
  if (FLAGS_bench_mode == "evict") return tessera::Evict();
  std::fprintf(stderr, "store_bench: unknown --bench_mode %s\n", FLAGS_bench_mode.c_str());
  return 2;
}
