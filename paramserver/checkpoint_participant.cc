#include "paramserver/checkpoint_participant.h"

#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <climits>
#include <cstring>

#include "checkpoint/catalog.h"
#include "checkpoint/crash_point.h"
#include "common/timeline.h"

namespace tessera::paramserver {
namespace {

using SteadyClock = std::chrono::steady_clock;
double Since(SteadyClock::time_point t) { return std::chrono::duration<double>(SteadyClock::now() - t).count(); }

// Lowest and highest applied step over every unit this server holds (sparse tables only
// when the dense parameters live on the workers); false when it holds none (then any
// moment is a boundary).
bool AppliedRange(const ParamServerCore& core, bool dense_on_workers, int64_t* lo, int64_t* hi) {
  *lo = INT64_MAX;
  *hi = INT64_MIN;
  const ShardMap& map = core.map();
  for (uint32_t id = 0; id < map.num_params(); ++id) {
    if (map.param(id)->kind == ParamKind::kSparse) {
      const int64_t a = core.aggregator().SparseAppliedStep(id);
      *lo = std::min(*lo, a);
      *hi = std::max(*hi, a);
      continue;
    }
    const DenseLayout* l = map.dense_layout(id);
    if (l == nullptr || dense_on_workers) continue;
    for (uint64_t c = 0; c < l->num_chunks(); ++c) {
      if (l->chunk_server[c] != core.server()) continue;
      const int64_t a = core.aggregator().DenseAppliedStep(id, c, c);
      *lo = std::min(*lo, a);
      *hi = std::max(*hi, a);
    }
  }
  return *lo != INT64_MAX;
}

}  // namespace

CheckpointParticipant::CheckpointParticipant(uint32_t server, checkpoint::WriteMethod method, PostFn post,
                                             ReportFn report, bool dense_on_workers)
    : server_(server),
      method_(method),
      dense_on_workers_(dense_on_workers),
      post_(std::move(post)),
      report_(std::move(report)) {
  writer_ = std::thread([this] { WriterLoop(); });
}

CheckpointParticipant::~CheckpointParticipant() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  writer_.join();
}

void CheckpointParticipant::OnPrepare(int64_t step, const std::string& directory, bool full, ParamServerCore& core) {
  core.mutable_store().TrackDirtyRows(true);
  pending_ = Pending{step, directory, full};
  AfterPush(core);
}

void CheckpointParticipant::OnCommit(int64_t step, bool committed, ParamServerCore& core) {
  if (pending_ && pending_->step == step) pending_.reset();
  if (step != uncommitted_step_) return;
  if (!committed) {
    // The rows of an abandoned snapshot are still changed relative to the last commit.
    for (const auto& [id, key] : uncommitted_rows_) core.mutable_store().MarkDirty(id, key);
  }
  uncommitted_rows_.clear();
  uncommitted_step_ = -1;
}

void CheckpointParticipant::AfterPush(ParamServerCore& core) {
  if (!pending_) return;
  int64_t lo, hi;
  const bool holds = AppliedRange(core, dense_on_workers_, &lo, &hi);
  const int64_t s = pending_->step;
  if (holds && hi >= s) {
    CheckpointReport r;
    r.step = s;
    r.message = "server " + std::to_string(server_) + " already applied step " + std::to_string(hi) +
                " when asked to checkpoint at the boundary of step " + std::to_string(s) + " (too late)";
    pending_.reset();
    report_(r);
    return;
  }
  if (holds && lo < s - 1) return;  // not there yet
  Snapshot(core);
}

void CheckpointParticipant::Snapshot(ParamServerCore& core) {
  const Pending p = *pending_;
  pending_.reset();
  // The reactor's stall: training waits for this copy, not for the write.
  timeline::Span span("checkpoint snapshot", "checkpoint", "step", p.step);
  const auto start = SteadyClock::now();
  ShardStore& store = core.mutable_store();
  // A previous snapshot that was never committed or abandoned (the coordinator moved
  // on): its rows count as changed.
  for (const auto& [id, key] : uncommitted_rows_) store.MarkDirty(id, key);
  uncommitted_step_ = p.step;
  Job job;
  job.step = p.step;
  job.full = p.full;
  job.dir = p.directory + "/server-" + std::to_string(server_);
  if (p.full) {
    // Everything is in this one; the rows changed since the last commit go back should
    // it be abandoned.
    store.SnapshotDirtyInto(nullptr, &uncommitted_rows_);
    store.SnapshotInto(&spare_, !dense_on_workers_);
    job.snap = std::move(spare_);
    spare_ = {};
  } else {
    // Sparse rows only when changed since the parent checkpoint: O(changed rows), into
    // the previous incremental snapshot's memory (not the full one's: trimming that to
    // the changed rows would free every other row's vectors here).
    store.SnapshotDirtyInto(&spare_incremental_, &uncommitted_rows_);
    job.snap = std::move(spare_incremental_);
    spare_incremental_ = {};
    job.snap.chunks.clear();
    const ShardMap& map = core.map();
    for (uint32_t id = 0; id < map.num_params(); ++id) {
      const DenseLayout* l = map.dense_layout(id);
      if (l == nullptr || dense_on_workers_) continue;
      for (uint64_t c = 0; c < l->num_chunks(); ++c) {
        if (const ChunkState* ch = store.chunk(id, c)) job.snap.chunks.push_back(*ch);
      }
    }
  }
  // The store's digest is kept up to date per row (O(dense elements) here, not O(rows)).
  // With the dense parameters on the workers it would hash their stale copies, which
  // this part does not hold: then the rows' part only.
  job.store_digest = dense_on_workers_ ? store.SparseDigest() : store.Digest();
  for (uint32_t id = 0; id < core.map().num_params(); ++id) job.names.push_back(core.map().param(id)->name);
  job.snapshot_s = Since(start);
  checkpoint::CrashPoint("after_snapshot");
  VLOG(1) << "checkpoint of step " << p.step << ": snapshot of " << job.snap.chunks.size() << " chunks and "
          << job.snap.rows.size() << " rows in " << job.snapshot_s * 1e3 << " ms";
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void CheckpointParticipant::WriterLoop() {
  timeline::SetThreadName("checkpoint writer");
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this]() REQUIRES(mu_) { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    timeline::Span span("checkpoint write", "checkpoint", "step", job.step);
    std::vector<checkpoint::RecordRef> records;
    records.reserve(job.snap.chunks.size() + job.snap.rows.size() + job.snap.erased.size() +
                    job.snap.sketches.size());
    for (const ChunkState& c : job.snap.chunks) {
      records.push_back({checkpoint::RecordKind::kDense, job.names[c.param_id], c.begin, c.updates, c.values, c.slots});
    }
    for (const RowState& r : job.snap.rows) {
      records.push_back({checkpoint::RecordKind::kSparse, job.names[r.param_id], r.key, r.updates, r.values, r.slots,
                         r.last_seen});
    }
    for (const auto& [id, key] : job.snap.erased) {
      records.push_back({checkpoint::RecordKind::kErased, job.names[id], key, 0, {}, {}});
    }
    for (const SketchState& sk : job.snap.sketches) {
      records.push_back({checkpoint::RecordKind::kSketch, job.names[sk.param_id], 0, sk.width, sk.counts, {}});
    }
    checkpoint::DelayPoint("server_write");
    auto stats = checkpoint::WriteShard(job.dir, std::move(records), method_, "mid_write", &cancel_);
    CheckpointReport rep;
    rep.step = job.step;
    rep.snapshot_s = job.snapshot_s;
    rep.store_digest = job.store_digest;
    if (stats.ok()) {
      rep.ok = true;
      rep.digest = stats->digest;
      rep.records = stats->records;
      rep.bytes = stats->file_bytes;
      rep.write_s = stats->seconds;
    } else {
      rep.message = "server " + std::to_string(server_) + ": " + stats.status().ToString();
    }
    auto snap = std::make_shared<ShardSnapshot>(std::move(job.snap));
    const bool full = job.full;
    post_([this, rep, snap, full] {
      ShardSnapshot& spare = full ? spare_ : spare_incremental_;
      if (spare.chunks.empty() && spare.rows.empty()) spare = std::move(*snap);
      report_(rep);
    });
  }
}

Status RestoreShards(const std::string& step_dir, ParamServerCore& core) {
  const auto start = SteadyClock::now();
  TESSERA_ASSIGN_OR_RETURN(checkpoint::Manifest m, checkpoint::ReadManifest(step_dir));
  TESSERA_ASSIGN_OR_RETURN(auto chain, checkpoint::Chain(step_dir, m));
  // Readers: the newest checkpoint's databases first (dense), then every database of the
  // chain, oldest first, for the rows (newer rows overwrite older ones).
  std::vector<std::vector<std::unique_ptr<checkpoint::ShardReader>>> readers(chain.size());
  for (size_t i = 0; i < chain.size(); ++i) {
    for (const auto& s : chain[i].second.servers) {
      TESSERA_ASSIGN_OR_RETURN(auto r, checkpoint::ShardReader::Open(chain[i].first + "/" + s.dir));
      readers[i].push_back(std::move(r));
    }
  }
  const ShardMap& map = core.map();
  ShardStore& store = core.mutable_store();
  uint64_t chunks = 0, rows = 0, erased = 0;
  for (uint32_t id = 0; id < map.num_params(); ++id) {
    const ParamSpec& spec = *map.param(id);
    const uint64_t nslots = static_cast<uint64_t>(NumOptimizerSlots(spec.optimizer.kind));
    if (spec.kind == ParamKind::kSparse) {
      const uint64_t width = static_cast<uint64_t>(spec.numel());
      for (size_t i = chain.size(); i-- > 0;) {
        // An incremental checkpoint's erased rows first (evicted or expired since its
        // parent), then its rows (a row erased and created again since is only a row).
        for (const auto& r : readers[i]) {
          TESSERA_RETURN_IF_ERROR(r->ReadRows(
              spec.name,
              [&](const checkpoint::Record& rec) -> Status {
                if (!map.OwnsKey(core.server(), id, rec.position)) return Status::OK();
                store.RestoreErase(id, rec.position);
                ++erased;
                return Status::OK();
              },
              checkpoint::RecordKind::kErased));
        }
        for (const auto& r : readers[i]) {
          TESSERA_RETURN_IF_ERROR(r->ReadRows(spec.name, [&](const checkpoint::Record& rec) -> Status {
            if (!map.OwnsKey(core.server(), id, rec.position)) return Status::OK();
            if (rec.values.size() != width || rec.slots.size() != nslots * width) {
              return Status::Corruption(r->dir() + ": row " + std::to_string(rec.position) + " of '" + spec.name +
                                        "' has " + std::to_string(rec.values.size()) + " values and " +
                                        std::to_string(rec.slots.size()) + " slots");
            }
            RowState row;
            row.param_id = id;
            row.key = rec.position;
            row.updates = rec.updates;
            row.last_seen = rec.last_seen;
            row.values = rec.values;
            row.slots = rec.slots;
            ++rows;
            return store.RestoreRow(std::move(row));
          }));
        }
      }
      // The admission sketch, from the newest checkpoint (each writes it whole): this
      // server's own when the server count is unchanged, else every server's summed
      // (every key's exact count with a partitioned sketch, whose servers' columns are
      // disjoint; an over-estimate of it without: docs/consistency.md).
      if (store.sketch(id) != nullptr) {
        const bool same = m.num_servers == static_cast<int>(map.num_servers());
        bool loaded = false;
        for (size_t k = 0; k < readers[0].size(); ++k) {
          const int part = chain[0].second.servers[k].index;
          if (part < 0 || (same && part != static_cast<int>(core.server()))) continue;
          TESSERA_RETURN_IF_ERROR(readers[0][k]->ReadRows(
              spec.name,
              [&](const checkpoint::Record& rec) -> Status {
                Status st = store.RestoreSketch(id, rec.values, /*add=*/loaded);
                loaded = true;
                return st.WithContext(readers[0][k]->dir());  // another sketch width: a config error
              },
              checkpoint::RecordKind::kSketch));
        }
        if (!loaded) {
          LOG(WARNING) << step_dir << " holds no admission sketch of '" << spec.name
                       << "' (written without --min_key_count): its counts start from zero";
        }
      }
      continue;
    }
    const DenseLayout* l = map.dense_layout(id);
    if (l == nullptr) continue;
    std::vector<ChunkState*> mine;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (uint64_t c = 0; c < l->num_chunks(); ++c) {
      if (ChunkState* ch = store.mutable_chunk(id, c)) {
        mine.push_back(ch);
        ranges.emplace_back(ch->begin, ch->end);
      }
    }
    std::vector<uint64_t> covered(mine.size(), 0);
    for (const auto& r : readers[0]) {
      TESSERA_RETURN_IF_ERROR(r->ReadDenseRanges(spec.name, ranges, [&](size_t i, const checkpoint::Record& rec) -> Status {
        ChunkState* ch = mine[i];
        const uint64_t n = ch->end - ch->begin;
        const uint64_t rn = rec.values.size();
        if (rec.slots.size() != nslots * rn) {
          return Status::Corruption(r->dir() + ": chunk at " + std::to_string(rec.position) + " of '" + spec.name +
                                    "' has " + std::to_string(rec.slots.size()) + " slot values for " +
                                    std::to_string(rn) + " elements");
        }
        const uint64_t b = std::max(ch->begin, rec.position), e = std::min(ch->end, rec.position + rn);
        std::memcpy(ch->values.data() + (b - ch->begin), rec.values.data() + (b - rec.position), (e - b) * 4);
        for (uint64_t k = 0; k < nslots; ++k) {
          std::memcpy(ch->slots.data() + k * n + (b - ch->begin), rec.slots.data() + k * rn + (b - rec.position),
                      (e - b) * 4);
        }
        ch->updates = rec.updates;
        covered[i] += e - b;
        return Status::OK();
      }));
    }
    for (size_t i = 0; i < mine.size(); ++i) {
      const ChunkState* ch = mine[i];
      if (covered[i] != ch->end - ch->begin) {
        return Status::Corruption(step_dir + " holds " + std::to_string(covered[i]) + " of the " +
                                  std::to_string(ch->end - ch->begin) + " elements [" + std::to_string(ch->begin) +
                                  ", " + std::to_string(ch->end) + ") of '" + spec.name + "'");
      }
      ++chunks;
    }
  }
  LOG(INFO) << "restored " << chunks << " chunks and " << rows << " sparse rows (" << erased << " erased by incremental checkpoints) from " << step_dir << " ("
            << chain.size() << " checkpoint(s), " << m.num_servers << " servers wrote it) in " << Since(start)
            << " s";
  return Status::OK();
}

}  // namespace tessera::paramserver
