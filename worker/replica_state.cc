#include "worker/replica_state.h"

#include <glog/logging.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "checkpoint/manifest.h"
#include "common/param_spec.h"

namespace tessera::worker {

Result<checkpoint::WriteStats> WriteReplica(GradSync& sync, const std::string& dir, checkpoint::WriteMethod method) {
  std::vector<checkpoint::RecordRef> records;
  for (const GradSync::LocalState& l : sync.local_states()) {
    const model::Parameter* p = l.param;
    const int64_t n = p->value.numel();
    const float* values = p->value.as<float>();
    size_t c = 0;
    for (int64_t off = 0; off < n; off += l.chunk, ++c) {
      const size_t len = static_cast<size_t>(std::min(l.chunk, n - off));
      records.push_back({checkpoint::RecordKind::kDense, p->spec.name, static_cast<uint64_t>(off), *l.updates,
                         {values + off, len}, (*l.slots)[c]});
    }
  }
  if (records.empty()) return Status::FailedPrecondition("this worker holds no all-reduced parameters");
  return checkpoint::WriteShard(dir, std::move(records), method, "replica_mid_write");
}

Status LoadReplica(GradSync& sync, const std::string& step_dir) {
  TESSERA_ASSIGN_OR_RETURN(checkpoint::Manifest m, checkpoint::ReadManifest(step_dir));
  // Dense chunks are in every checkpoint, full or incremental: the newest one suffices.
  std::vector<std::unique_ptr<checkpoint::ShardReader>> readers;
  for (const checkpoint::ServerPart& s : m.servers) {
    TESSERA_ASSIGN_OR_RETURN(auto r, checkpoint::ShardReader::Open(step_dir + "/" + s.dir));
    readers.push_back(std::move(r));
  }
  for (const GradSync::LocalState& l : sync.local_states()) {
    model::Parameter* p = l.param;
    const std::string& name = p->spec.name;
    const uint64_t n = static_cast<uint64_t>(p->value.numel());
    const uint64_t nslots = static_cast<uint64_t>(NumOptimizerSlots(p->spec.optimizer.kind));
    const uint64_t chunk = static_cast<uint64_t>(l.chunk);
    float* values = p->value.as<float>();
    uint64_t covered = 0;
    int64_t updates = -1;
    for (const auto& r : readers) {
      TESSERA_RETURN_IF_ERROR(r->ReadDense(name, 0, n, [&](const checkpoint::Record& rec) -> Status {
        const uint64_t rb = rec.position, rn = rec.values.size();
        if (rn == 0 || rb + rn > n || rec.slots.size() != nslots * rn) {
          return Status::Corruption(r->dir() + ": the chunk of '" + name + "' at " + std::to_string(rb) + " has " +
                                    std::to_string(rn) + " values and " + std::to_string(rec.slots.size()) +
                                    " slots; the parameter has " + std::to_string(n) + " elements and " +
                                    std::to_string(nslots) + " slots per element");
        }
        if (updates >= 0 && rec.updates != updates) {
          return Status::Corruption(r->dir() + ": the chunks of '" + name + "' disagree on the update count (" +
                                    std::to_string(updates) + " and " + std::to_string(rec.updates) + ")");
        }
        updates = rec.updates;
        std::copy(rec.values.begin(), rec.values.end(), values + rb);
        // Local chunks may be cut differently from the record (another --chunk_bytes).
        for (uint64_t e = rb; e < rb + rn;) {
          const uint64_t c = e / chunk, cb = c * chunk, clen = std::min(chunk, n - cb);
          const uint64_t stop = std::min(rb + rn, cb + clen);
          std::vector<float>& slots = (*l.slots)[c];
          for (uint64_t k = 0; k < nslots; ++k) {
            std::copy(rec.slots.begin() + static_cast<std::ptrdiff_t>(k * rn + (e - rb)),
                      rec.slots.begin() + static_cast<std::ptrdiff_t>(k * rn + (stop - rb)),
                      slots.begin() + static_cast<std::ptrdiff_t>(k * clen + (e - cb)));
          }
          e = stop;
        }
        covered += rn;
        return Status::OK();
      }));
    }
    if (covered != n) {
      return Status::Corruption(step_dir + ": the checkpoint holds " + std::to_string(covered) + " of the " +
                                std::to_string(n) + " elements of '" + name + "'");
    }
    *l.updates = updates;
  }
  return Status::OK();
}

}  // namespace tessera::worker
