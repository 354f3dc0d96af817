// One participant's RocksDB database inside a checkpoint: written once from an
// in-memory snapshot, then only read (resume, resharding, verify, the ckpt tool).
//
// Write paths (WriteMethod; docs/benchmarks-checkpoint.md has the measurement that
// picked the default):
//   kSstIngest  sort the records by key, write one SST file with SstFileWriter (synced
//               by Finish), ingest it into a fresh database (IngestExternalFile,
//               move_files), close, fsync the directory.
//   kWriteBatch WriteBatches of ~8 MiB with the WAL off, then Flush (which writes and
//               syncs the SST and the database's MANIFEST), close, fsync the directory.
// Both are sound: when WriteShard returns OK every byte is on disk, and a crash before
// that leaves a directory no manifest names, which garbage collection removes.
//
// Digest: FNV-1a 64 over, for each record in key order, the key bytes and the value's
// stored crc32c. Every value's crc covers its bytes, so checking every crc and this
// digest checks the whole database against the manifest.
//
// Thread safety: a ShardReader is used by one thread at a time; distinct readers and
// writers are independent.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/record.h"
#include "common/status.h"

namespace rocksdb {
class DB;
}

namespace tessera::checkpoint {

enum class WriteMethod { kSstIngest, kWriteBatch };
// "sst" / "batch"; InvalidArgument otherwise.
Result<WriteMethod> ParseWriteMethod(const std::string& s);
const char* WriteMethodName(WriteMethod m);

struct WriteStats {
  uint64_t records = 0;
  uint64_t value_bytes = 0;  // keys + encoded values handed to RocksDB
  uint64_t file_bytes = 0;   // size of the directory's files afterwards
  uint64_t digest = 0;
  double seconds = 0;
};

// Writes `records` (any order; sorted here) into a new database at `dir` (which must not
// exist). `crash_point_mid_write` names a CrashPoint passed halfway through the records;
// `cancel`, when set by another thread, stops the write (Aborted; the directory is left
// for garbage collection).
Result<WriteStats> WriteShard(const std::string& dir, std::vector<RecordRef> records, WriteMethod method,
                              const char* crash_point_mid_write = nullptr, const std::atomic<bool>* cancel = nullptr);

struct ScanStats {
  uint64_t records = 0;
  uint64_t dense_records = 0;
  uint64_t sparse_records = 0;
  uint64_t bytes = 0;
  uint64_t digest = 0;
};

class ShardReader {
 public:
  // Opens `dir` read-only. NotFound / Corruption naming the directory.
  static Result<std::unique_ptr<ShardReader>> Open(const std::string& dir);
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;

  // Calls fn with every dense record of `param` that overlaps elements [begin, end).
  Status ReadDense(const std::string& param, uint64_t begin, uint64_t end,
                   const std::function<Status(const Record&)>& fn) const;
  // The same for several ranges (ascending, disjoint) with one iterator: fn(i, record)
  // for each record overlapping ranges[i]. What a restoring server uses.
  Status ReadDenseRanges(const std::string& param, const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                         const std::function<Status(size_t, const Record&)>& fn) const;
  // Calls fn with every row of sparse table `param`, in key order (kind kErased: the
  // rows an incremental checkpoint erased; kSketch: the table's admission sketch).
  Status ReadRows(const std::string& param, const std::function<Status(const Record&)>& fn,
                  RecordKind kind = RecordKind::kSparse) const;
  // Reads every record, checking every key, value checksum and RocksDB block checksum;
  // returns the counts and the digest (compare with the manifest's).
  Result<ScanStats> Scan(const std::function<Status(const Record&)>& fn = nullptr) const;

  const std::string& dir() const { return dir_; }

 private:
  ShardReader(std::string dir, rocksdb::DB* db) : dir_(std::move(dir)), db_(db) {}
  std::string dir_;
  rocksdb::DB* db_;  // owned
};

}  // namespace tessera::checkpoint
