#include "paramserver/count_min_sketch.h"

#include <algorithm>
#include <string>

#include "common/cluster/shard_map.h"
#include "common/hash.h"

namespace tessera::paramserver {

CountMinSketch::CountMinSketch(uint32_t width, uint64_t seed, int64_t table_id)
    : width_(width), seed_(seed), counts_(uint64_t{kDepth} * width, 0) {
  if (table_id >= 0 && width >= kSparsePartitions) {
    table_ = static_cast<uint32_t>(table_id);
    per_ = width / kSparsePartitions;
  }
}

uint64_t CountMinSketch::Base(Key key) const {
  return per_ == 0 ? 0 : uint64_t{ShardMap::SparsePartitionOf(table_, key)} * per_;
}

uint64_t CountMinSketch::Index(uint32_t row, Key key, uint64_t base) const {
  const uint64_t h = HashCombine(seed_ + row, key);
  return uint64_t{row} * width_ + (per_ == 0 ? h & (width_ - 1) : base + h % per_);
}

uint32_t CountMinSketch::Add(Key key) {
  const uint64_t base = Base(key);
  uint32_t est = kMaxCount;
  for (uint32_t r = 0; r < kDepth; ++r) {
    uint16_t& c = counts_[Index(r, key, base)];
    if (c < kMaxCount) ++c;
    est = std::min<uint32_t>(est, c);
  }
  return est;
}

uint32_t CountMinSketch::Estimate(Key key) const {
  const uint64_t base = Base(key);
  uint32_t est = kMaxCount;
  for (uint32_t r = 0; r < kDepth; ++r) est = std::min<uint32_t>(est, counts_[Index(r, key, base)]);
  return est;
}

void CountMinSketch::CountsInto(std::vector<float>* out) const {
  out->assign(counts_.begin(), counts_.end());
}

Status CountMinSketch::Load(std::span<const float> counts, bool add) {
  if (counts.size() != counts_.size()) {
    return Status::InvalidArgument("admission sketch of " + std::to_string(counts.size()) + " counters, expected " +
                                   std::to_string(counts_.size()) + " (--min_key_count_sketch_width differs?)");
  }
  for (const float f : counts) {
    if (!(f >= 0 && f <= kMaxCount) || f != static_cast<float>(static_cast<uint32_t>(f))) {
      return Status::InvalidArgument("admission sketch counter " + std::to_string(f) + " is not a count");
    }
  }
  for (size_t i = 0; i < counts.size(); ++i) {
    const uint32_t v = static_cast<uint32_t>(counts[i]) + (add ? counts_[i] : 0);
    counts_[i] = static_cast<uint16_t>(std::min(v, kMaxCount));
  }
  return Status::OK();
}

}  // namespace tessera::paramserver
