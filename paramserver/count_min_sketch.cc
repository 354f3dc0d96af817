#include "paramserver/count_min_sketch.h"

#include <algorithm>
#include <string>

#include "common/hash.h"

namespace tessera::paramserver {

CountMinSketch::CountMinSketch(uint32_t width, uint64_t seed)
    : width_(width), seed_(seed), counts_(uint64_t{kDepth} * width, 0) {}

uint64_t CountMinSketch::Index(uint32_t row, Key key) const {
  return uint64_t{row} * width_ + (HashCombine(seed_ + row, key) & (width_ - 1));
}

uint32_t CountMinSketch::Add(Key key) {
  uint32_t est = kMaxCount;
  for (uint32_t r = 0; r < kDepth; ++r) {
    uint16_t& c = counts_[Index(r, key)];
    if (c < kMaxCount) ++c;
    est = std::min<uint32_t>(est, c);
  }
  return est;
}

uint32_t CountMinSketch::Estimate(Key key) const {
  uint32_t est = kMaxCount;
  for (uint32_t r = 0; r < kDepth; ++r) est = std::min<uint32_t>(est, counts_[Index(r, key)]);
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
