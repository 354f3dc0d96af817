// CountMinSketch: the admission filter of a sparse table (--min_key_count): how many
// times a key without a row has been pushed, over-estimated, never under-estimated.
//
// kDepth rows of `width` 16-bit counters (width a power of two; 2 bytes per counter, so
// the default 4 x 65536 holds 512 KiB per table per server). Add increments the key's
// counter in every row (saturating at kMaxCount) and returns the minimum, the estimate.
// An estimate exceeds the true count by at most e * N / width with probability
// 1 - e^-kDepth for N increments in all (Cormode & Muthukrishnan): size the width to the
// number of distinct pushes of absent keys a server sees between restarts.
//
// Partitioned layout (a table's sketch in a ShardStore, width >= kSparsePartitions):
// each row's columns are split into kSparsePartitions runs of width / 840 columns, and a
// key counts only in the run of its virtual partition (ShardMap::SparsePartitionOf). A
// server's keys are in its partitions only, so the servers' sketches use disjoint
// columns: their sum is every server's own counts, the same sketch for every server
// count. Accuracy is that of a sketch of 840 * (width / 840) columns, each partition's
// keys hashed over its own run.
//
// The counters are part of a checkpoint (one record per table per server), so a resume
// with the same servers continues with the same sketch. Merging sketches by summing
// (resharding) gives every key's exact count with the partitioned layout (admission
// stays bitwise what an uninterrupted run does), and an upper bound of it without
// (docs/consistency.md).
//
// Thread safety: none; owned by its ShardStore (the server's reactor thread).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/keys.h"
#include "common/status.h"

namespace tessera::paramserver {

class CountMinSketch {
 public:
  static constexpr uint32_t kDepth = 4;
  static constexpr uint32_t kMaxCount = 65535;

  // REQUIRES width a power of two >= 64. `seed` names the table (its hashes differ per
  // table). `table_id` >= 0 and width >= kSparsePartitions: the partitioned layout of
  // table `table_id`'s keys.
  CountMinSketch(uint32_t width, uint64_t seed, int64_t table_id = -1);

  uint32_t width() const { return width_; }
  // Columns of a partition's run per row; 0: not partitioned.
  uint32_t partition_width() const { return per_; }
  // Counts one more push of `key`; returns the new estimate.
  uint32_t Add(Key key);
  uint32_t Estimate(Key key) const;
  // The counters as floats (exact: every count is < 2^24), row after row: a checkpoint
  // record's values.
  void CountsInto(std::vector<float>* out) const;
  // Replaces the counters (add false) or adds to them, saturating (add true: merging
  // the sketches of several servers). InvalidArgument when `counts` does not have
  // kDepth * width whole values in [0, kMaxCount].
  Status Load(std::span<const float> counts, bool add);
  bool operator==(const CountMinSketch& o) const { return width_ == o.width_ && counts_ == o.counts_; }

 private:
  // `base`: the first column of the key's run (0 without partitions).
  uint64_t Index(uint32_t row, Key key, uint64_t base) const;
  uint64_t Base(Key key) const;

  uint32_t width_;
  uint64_t seed_;
  uint32_t table_ = 0;
  uint32_t per_ = 0;
  std::vector<uint16_t> counts_;  // kDepth * width_
};

}  // namespace tessera::paramserver
